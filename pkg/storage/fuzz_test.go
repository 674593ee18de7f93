package storage

import (
	"bytes"
	"runtime"
	"testing"
)

// FuzzSegment reads arbitrary segment bytes left by a previous run: no
// panic, memory bounded by the file's size, and every record handed out is
// exactly a record the file holds at its position, checksum and all.
func FuzzSegment(f *testing.F) {
	var valid []byte
	for i := range 5 {
		valid = appendRecord(valid, wire(i))
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-7])
	f.Add(append(append([]byte{1, 2, 3}, valid...), 9))
	broken := bytes.Clone(valid)
	broken[40] ^= 1
	f.Add(broken)
	f.Add([]byte{0xfa, 0xb1, 0x5e, 0xc0, 0xff, 0xff, 0xff, 0x00})
	// One store for every run: building its logger and metrics anew
	// each time would make the coverage differ from run to run.
	s := &Store{logger: logger(), metrics: newMetrics(nil)}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzBody(t, s, data) })
}

func fuzzBody(t *testing.T, s *Store, data []byte) {
	file := append([]byte(fileMagic), data...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	// What Open does with a segment a previous run left, then what a
	// cursor reads of it.
	seg := &segment{id: 1}
	if !s.scan(seg, &segReader{f: bytes.NewReader(file)}, int64(len(file))) {
		t.Fatal("a segment with its magic taken for another format")
	}
	r := &segReader{f: bytes.NewReader(file), pos: int64(len(fileMagic))}
	var n int64
	for {
		w, at, _, err := r.next(seg.size.Load())
		if err != nil {
			break
		}
		n++
		rec := appendRecord(nil, w)
		if end := at + int64(len(rec)); end > int64(len(file)) || !bytes.Equal(file[at:end], rec) {
			t.Fatalf("record at %d is not what the file holds there", at)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > uint64(8*len(file))+2<<20 {
		t.Fatalf("reading %d bytes allocated %d", len(file), grew)
	}
	if seg.records.Load() != n {
		t.Fatalf("the scan counted %d records, a cursor reads %d", seg.records.Load(), n)
	}
}
