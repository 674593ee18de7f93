package storage

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
)

func logger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func open(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts, logger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// crash abandons s as a killed process would: no marks saved, no sync.
func crash(s *Store) {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	s.mu.Lock()
	_ = s.active.file.Close()
	s.mu.Unlock()
	s.curMu.Lock()
	for _, c := range s.cursors {
		c.r.close()
	}
	s.curMu.Unlock()
}

func testAlert(i int) *alert.Alert {
	start := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	return &alert.Alert{
		Labels:       model.LabelSet{"alertname": "Test", "n": model.LabelValue(fmt.Sprint(i))},
		Annotations:  model.LabelSet{"command": model.LabelValue(fmt.Sprintf("sh -c 'echo %d ✓'", i))},
		StartsAt:     start,
		EndsAt:       start.Add(10 * time.Minute),
		GeneratorURL: "https://falco.example.com/e/1",
	}
}

func wire(i int) *alert.Wire { return alert.Encode(testAlert(i)) }

// appendN writes alerts from..to-1, one request each.
func appendN(t testing.TB, s *Store, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := s.Append([]*alert.Wire{wire(i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// readAll reads everything c has, returning the alert numbers and records.
func readAll(c *Cursor) ([]int, []Record) {
	var ns []int
	var recs []Record
	c.Fill(func() bool { return true }, func(r Record) {
		var a struct {
			Labels map[string]string `json:"labels"`
		}
		if err := json.Unmarshal(r.Wire.JSON, &a); err != nil {
			panic(err)
		}
		var n int
		fmt.Sscan(a.Labels["n"], &n)
		ns = append(ns, n)
		recs = append(recs, r)
	})
	return ns, recs
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCursorReadsWhatWasWritten: a cursor reads every record in order, as
// the bytes that were written, across segments; one opened later at the
// head reads only what comes after.
func TestCursorReadsWhatWasWritten(t *testing.T) {
	s := open(t, t.TempDir(), Options{SegmentBytes: 4 << 10})
	defer s.Close()
	from := s.Tail()
	c, err := s.Cursor("a", &from)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 0, 200)
	late, _ := s.Cursor("late", nil)
	appendN(t, s, 200, 210)
	got, recs := readAll(c)
	if !slices.Equal(got, seq(0, 210)) {
		t.Fatalf("read %v", got)
	}
	if n := len(segmentFiles(t, s.dir)); n < 5 {
		t.Fatalf("%d segments: the test wants several", n)
	}
	for i, r := range recs {
		if w := wire(i); string(r.Wire.JSON) != string(w.JSON) || !r.Wire.SameLabels(w) || !r.Wire.EndsAt.Equal(w.EndsAt) {
			t.Fatalf("record %d:\n%s\nwant\n%s", i, r.Wire.JSON, w.JSON)
		}
		if i > 0 && !recs[i-1].Pos.Before(r.Pos) {
			t.Fatalf("positions out of order at %d: %v then %v", i, recs[i-1].Pos, r.Pos)
		}
	}
	if got, _ := readAll(late); !slices.Equal(got, seq(200, 210)) {
		t.Fatalf("cursor opened at the head read %v", got)
	}
	if c.Backlog() != 0 || late.Backlog() != 0 {
		t.Fatalf("backlogs %d, %d after reading everything", c.Backlog(), late.Backlog())
	}
	appendN(t, s, 210, 215)
	if b := c.Backlog(); b != 5 {
		t.Fatalf("backlog %d, want 5", b)
	}
}

// holder is a cursor's owner that is done with the records it was told of.
type holder struct{ done Position }

func (h *holder) mark(read Position) Position {
	if h.done.Before(read) {
		return h.done
	}
	return read
}

// TestRestartResumesFromTheMarks covers a restart after a clean stop and
// after a crash in each state: mid-read (records read, not done), between
// the delivery and the mark being saved, and mid-write (a torn record).
func TestRestartResumesFromTheMarks(t *testing.T) {
	t.Run("clean stop", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, dir, Options{})
		c, _ := s.Cursor("am", nil)
		h := &holder{}
		c.SetMark(h.mark)
		appendN(t, s, 0, 100)
		_, recs := readAll(c)
		h.done = recs[60].Pos // 0..59 delivered
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = open(t, dir, Options{})
		defer s.Close()
		c, _ = s.Cursor("am", nil)
		if got, _ := readAll(c); !slices.Equal(got, seq(60, 100)) {
			t.Fatalf("after restart read %v, want 60..99", got)
		}
	})
	t.Run("crash mid-read", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, dir, Options{FsyncInterval: 10 * time.Millisecond})
		c, _ := s.Cursor("am", nil)
		h := &holder{}
		c.SetMark(h.mark)
		appendN(t, s, 0, 100)
		readAll(c) // read into a window, none delivered
		time.Sleep(50 * time.Millisecond)
		crash(s)
		s = open(t, dir, Options{})
		defer s.Close()
		c, _ = s.Cursor("am", nil)
		if got, _ := readAll(c); !slices.Equal(got, seq(0, 100)) {
			t.Fatalf("after crash read %v, want all 100 again", got)
		}
	})
	t.Run("crash between delivery and saving the mark", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, dir, Options{FsyncInterval: time.Hour}) // no save before the crash
		c, _ := s.Cursor("am", nil)
		h := &holder{}
		c.SetMark(h.mark)
		s.mu.Lock()
		s.saveMarks() // as a tick would, before the records
		s.mu.Unlock()
		appendN(t, s, 0, 100)
		_, recs := readAll(c)
		h.done = recs[99].Pos
		crash(s)
		s = open(t, dir, Options{})
		defer s.Close()
		c, _ = s.Cursor("am", nil)
		// Delivered again (at least once): nothing is lost.
		if got, _ := readAll(c); !slices.Equal(got, seq(0, 100)) {
			t.Fatalf("after crash read %v, want all 100 again", got)
		}
	})
	t.Run("crash mid-write", func(t *testing.T) {
		dir := t.TempDir()
		reg := prometheus.NewRegistry()
		s, err := Open(dir, Options{}, logger(), reg)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := s.Cursor("am", nil)
		appendN(t, s, 0, 50)
		path := s.active.path
		crash(s)
		// Half a record at the end, as a kill in the middle of write(2)
		// can leave.
		rec := appendRecord(nil, wire(50))
		f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		f.Write(rec[:len(rec)/2])
		f.Close()
		_ = c
		reg = prometheus.NewRegistry()
		s, err = Open(dir, Options{}, logger(), reg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		appendN(t, s, 51, 60) // acknowledged after the restart
		// No mark was saved before the crash: read from the oldest.
		from := s.Tail()
		c, _ = s.Cursor("am", &from)
		if got, _ := readAll(c); !slices.Equal(got, append(seq(0, 50), seq(51, 60)...)) {
			t.Fatalf("read %v", got)
		}
		if n := testutil.ToFloat64(s.metrics.corrupt); n != 1 {
			t.Fatalf("corrupt_records_total %v, want 1 for the torn record", n)
		}
	})
}

// TestSegmentsGoWhenEveryCursorIsPast: a segment is deleted only once every
// cursor's mark is past it; a cursor that is behind keeps it.
func TestSegmentsGoWhenEveryCursorIsPast(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 2 << 10, FsyncInterval: time.Hour})
	defer s.Close()
	fast, _ := s.Cursor("fast", nil)
	slow, _ := s.Cursor("slow", nil)
	hf, hs := &holder{}, &holder{}
	fast.SetMark(hf.mark)
	slow.SetMark(hs.mark)
	appendN(t, s, 0, 100)
	_, recs := readAll(fast)
	hf.done = s.Head()
	before := len(segmentFiles(t, dir))
	s.tick()
	if n := len(segmentFiles(t, dir)); n != before {
		t.Fatalf("%d segments after a tick, %d before: the slow cursor needs them all", n, before)
	}
	_, _ = readAll(slow)
	hs.done = recs[50].Pos
	s.tick()
	after := len(segmentFiles(t, dir))
	if after >= before || after < 2 {
		t.Fatalf("%d segments of %d left, want those from record 50 on", after, before)
	}
	hs.done = s.Head()
	s.tick()
	if n := len(segmentFiles(t, dir)); n != 1 {
		t.Fatalf("%d segments when every cursor is done, want the new active one", n)
	}
	if s.diskBytes.Load() != int64(len(fileMagic)) {
		t.Fatalf("disk bytes %d with nothing kept", s.diskBytes.Load())
	}
}

// TestCorruptRecordCostsOnlyItself: a flipped byte in the middle of a
// segment, or a bad length in the first record, loses exactly that record;
// the reader goes on at the next, and the segment is kept, renamed, once
// it is done.
func TestCorruptRecordCostsOnlyItself(t *testing.T) {
	for _, tc := range []struct {
		name   string
		victim int
		damage func(b []byte, at int)
	}{
		{"byte flipped mid-segment", 3000, func(b []byte, at int) { b[at+headerSize+40] ^= 0x55 }},
		{"bad length on the first record", 0, func(b []byte, at int) { binary.LittleEndian.PutUint32(b[at+4:], 0x00ffffff) }},
		{"length one too short", 10, func(b []byte, at int) {
			binary.LittleEndian.PutUint32(b[at+4:], binary.LittleEndian.Uint32(b[at+4:])-1)
		}},
		{"eight bytes flipped", 5999, func(b []byte, at int) {
			for i := range 8 {
				b[at+headerSize+100+i] ^= 0xff
			}
		}},
		{"magic hit", 17, func(b []byte, at int) { b[at] = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, Options{SegmentBytes: 64 << 20})
			appendN(t, s, 0, 6000)
			path := s.active.path
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			// Find the victim's offset by walking the records.
			at := len(fileMagic)
			for range tc.victim {
				at += headerSize + int(binary.LittleEndian.Uint32(b[at+4:]))
			}
			tc.damage(b, at)
			os.WriteFile(path, b, 0o600)

			s = open(t, dir, Options{FsyncInterval: time.Hour})
			defer s.Close()
			from := s.Tail()
			c, _ := s.Cursor("am", &from)
			h := &holder{}
			c.SetMark(h.mark)
			got, _ := readAll(c)
			want := slices.Delete(seq(0, 6000), tc.victim, tc.victim+1)
			if !slices.Equal(got, want) {
				t.Fatalf("read %d records, want all but %d (%d)", len(got), tc.victim, len(want))
			}
			if n := testutil.ToFloat64(s.metrics.corrupt); n != 1 {
				t.Fatalf("corrupt_records_total %v, want 1", n)
			}
			h.done = s.Head()
			s.tick()
			if _, err := os.Stat(path + corruptSuffix); err != nil {
				t.Fatalf("the damaged segment was not kept for inspection: %v", err)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatalf("the damaged segment is still in the spool: %v", err)
			}
		})
	}
}

// TestFullSpool: at max_bytes, drop-oldest deletes the oldest segment and
// counts what a cursor had not read, which moves on to the next; refuse
// answers ErrFull and writes nothing.
func TestFullSpool(t *testing.T) {
	one := int64(headerSize + len(wire(0).JSON))
	t.Run("drop-oldest", func(t *testing.T) {
		s := open(t, t.TempDir(), Options{SegmentBytes: 10 * one, MaxBytes: 45 * one})
		defer s.Close()
		c, _ := s.Cursor("am", nil)
		appendN(t, s, 0, 100)
		if d := s.diskBytes.Load(); d > 45*one {
			t.Fatalf("disk %d over the bound %d", d, 45*one)
		}
		got, _ := readAll(c)
		lost := testutil.ToFloat64(s.metrics.dropped)
		if int(lost)+len(got) != 100 || lost == 0 || c.Lost() != int64(lost) {
			t.Fatalf("read %d, dropped %v: want 100 in all, some dropped", len(got), lost)
		}
		if !slices.Equal(got, seq(100-len(got), 100)) {
			t.Fatalf("read %v: want the newest", got)
		}
	})
	t.Run("refuse", func(t *testing.T) {
		s := open(t, t.TempDir(), Options{SegmentBytes: 10 * one, MaxBytes: 45 * one, WhenFull: Refuse})
		defer s.Close()
		c, _ := s.Cursor("am", nil)
		refused := 0
		for i := range 100 {
			if err := s.Append([]*alert.Wire{wire(i)}); errors.Is(err, ErrFull) {
				refused++
			} else if err != nil {
				t.Fatal(err)
			}
		}
		got, _ := readAll(c)
		if refused == 0 || len(got)+refused != 100 || !slices.Equal(got, seq(0, len(got))) {
			t.Fatalf("read %d, refused %d", len(got), refused)
		}
		// Once the cursor is done, there is room again.
		head := s.Head()
		c.SetMark(func(Position) Position { return head })
		if err := s.Append([]*alert.Wire{wire(100)}); err != nil {
			t.Fatalf("after delivery: %v", err)
		}
	})
}

// TestLegacySegmentsAreRewritten: segments of the earlier format are read
// at Open, appended in the current one, and deleted.
func TestLegacySegmentsAreRewritten(t *testing.T) {
	dir := t.TempDir()
	var b []byte
	for i := range 20 {
		a := testAlert(i)
		rec := legacyRecord{Labels: map[string]string{}, Annotations: map[string]string{}, StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: a.GeneratorURL}
		for k, v := range a.Labels {
			rec.Labels[string(k)] = string(v)
		}
		for k, v := range a.Annotations {
			rec.Annotations[string(k)] = string(v)
		}
		p, _ := json.Marshal(rec)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
		b = binary.LittleEndian.AppendUint32(b, crc32Checksum(p))
		b = append(b, p...)
	}
	legacy := filepath.Join(dir, fmt.Sprintf("%016d%s", 7, segmentSuffix))
	os.WriteFile(legacy, b, 0o600)
	s := open(t, dir, Options{})
	defer s.Close()
	from := s.Tail()
	c, _ := s.Cursor("am", &from)
	got, recs := readAll(c)
	if !slices.Equal(got, seq(0, 20)) {
		t.Fatalf("read %v", got)
	}
	if string(recs[3].Wire.JSON) != string(wire(3).JSON) {
		t.Fatalf("migrated\n%s\nwant\n%s", recs[3].Wire.JSON, wire(3).JSON)
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Fatalf("legacy segment still there: %v", err)
	}
}

// TestSyncEveryAppend: with no interval, every append is synced before it
// returns.
func TestSyncEveryAppend(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := Open(t.TempDir(), Options{FsyncInterval: 0}, logger(), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	appendN(t, s, 0, 3)
	if n := testutil.CollectAndCount(s.metrics.fsync); n != 1 {
		t.Fatalf("%d fsync series", n)
	}
	m, _ := reg.Gather()
	for _, mf := range m {
		if mf.GetName() == "falco_am_bridge_storage_fsync_duration_seconds" {
			if c := mf.GetMetric()[0].GetHistogram().GetSampleCount(); c != 3 {
				t.Fatalf("%d syncs for 3 appends", c)
			}
		}
	}
}

// TestIdleActiveSegmentIsRotatedAway: once every cursor has everything,
// the active segment is sealed and deleted, so disk use goes back to
// nothing.
func TestIdleActiveSegmentIsRotatedAway(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{FsyncInterval: time.Hour})
	defer s.Close()
	c, _ := s.Cursor("am", nil)
	appendN(t, s, 0, 10)
	readAll(c)
	s.tick()
	files := segmentFiles(t, dir)
	if len(files) != 1 || s.diskBytes.Load() != int64(len(fileMagic)) {
		t.Fatalf("%v, %d bytes after everything was read", files, s.diskBytes.Load())
	}
}
