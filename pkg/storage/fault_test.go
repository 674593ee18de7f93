package storage

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alertmanager"
)

// faults makes segment files whose writes fail on demand: the writes
// numbered in fail (counted over every file, from 1) write half their
// bytes and return an error, or, when short is set, return no error but
// report the half.
type faults struct {
	mu     sync.Mutex
	writes int
	fail   map[int]bool
	short  bool
}

type faultyFile struct {
	segmentFile
	f *faults
}

func (f *faults) open(path string) (segmentFile, error) {
	file, err := createSegment(path)
	if err != nil {
		return nil, err
	}
	return &faultyFile{segmentFile: file, f: f}, nil
}

func (w *faultyFile) Write(p []byte) (int, error) {
	w.f.mu.Lock()
	w.f.writes++
	fail, short := w.f.fail[w.f.writes], w.f.short
	w.f.mu.Unlock()
	if !fail {
		return w.segmentFile.Write(p)
	}
	n, _ := w.segmentFile.Write(p[:len(p)/2])
	if short {
		return n, nil
	}
	return n, errors.New("injected: no space left on device")
}

// TestWriteFailureSealsTheSegment: a write that fails in the middle of a
// record leaves a torn record; the records acknowledged after it must not
// be lost behind it at replay.
func TestWriteFailureSealsTheSegment(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fail  []int
		short bool
		// refused is how many Appends returned an error.
		refused int
	}{
		// The 5th write fails; Append tries again in a new segment.
		{name: "error", fail: []int{5}},
		{name: "short write", fail: []int{5}, short: true},
		// The retry fails too: that Append is refused, the next works.
		{name: "retry fails", fail: []int{5, 6}, refused: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := &faults{fail: map[int]bool{}, short: tc.short}
			for _, n := range tc.fail {
				f.fail[n] = true
			}
			reg := prometheus.NewRegistry()
			s, _ := openWith(t, dir, Options{FsyncInterval: time.Hour, openFile: f.open}, reg)
			var acked []string
			refused := 0
			for i := range 10 {
				seg, failed, err := s.Append([]*alertmanager.Alert{testAlert(i)})
				if failed != nil {
					t.Fatal(failed)
				}
				if err != nil {
					refused++
					continue
				}
				acked = append(acked, fmt.Sprint(i))
				seg.Add(1) // a queue holds it; never delivered
				seg.Done()
			}
			if refused != tc.refused {
				t.Errorf("%d Appends refused, want %d", refused, tc.refused)
			}
			if got := testutil.ToFloat64(s.metrics.errors); got != float64(len(tc.fail)) {
				t.Errorf("storage_errors_total = %v, want %d", got, len(tc.fail))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s2, replayed := openWith(t, dir, Options{FsyncInterval: time.Hour}, prometheus.NewRegistry())
			defer s2.Close()
			var got []string
			for _, r := range replayed {
				got = append(got, string(r.Alert.Labels["n"]))
			}
			if fmt.Sprint(got) != fmt.Sprint(acked) {
				t.Fatalf("replayed %v, want every acknowledged record %v", got, acked)
			}
		})
	}
}

// TestMaxBytes: past MaxBytes, Append refuses with ErrFull and writes
// nothing; once the queues are done with records, there is room again.
func TestMaxBytes(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, Options{FsyncInterval: time.Hour, SegmentBytes: 2048, MaxBytes: 8 << 10})
	defer s.Close()
	var held []*Segment
	full := 0
	for i := range 100 {
		seg, _, err := s.Append([]*alertmanager.Alert{testAlert(i)})
		if errors.Is(err, ErrFull) {
			full++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		seg.Add(1)
		seg.Done()
		held = append(held, seg)
	}
	if full == 0 || len(held) == 0 {
		t.Fatalf("%d appends refused, %d taken", full, len(held))
	}
	if b := s.diskBytes.Load(); b > 8<<10 {
		t.Fatalf("%d bytes on disk, over MaxBytes", b)
	}
	for _, seg := range held {
		seg.Done()
	}
	if _, _, err := s.Append([]*alertmanager.Alert{testAlert(1)}); err != nil {
		t.Fatalf("after every record was done: %v", err)
	}
}
