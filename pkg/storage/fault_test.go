package storage

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
)

// faults makes segment files whose writes fail on demand: the writes
// numbered in fail (counted over every file, from 1) write half their
// bytes and return an error, or, when short is set, return no error but
// report the half. truncFails makes the undo fail too.
type faults struct {
	mu         sync.Mutex
	writes     int
	fail       map[int]bool
	short      bool
	truncFails bool
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

func (w *faultyFile) Truncate(size int64) error {
	w.f.mu.Lock()
	fails := w.f.truncFails
	w.f.mu.Unlock()
	if fails {
		return errors.New("injected: truncate failed")
	}
	return w.segmentFile.Truncate(size)
}

// TestFailedWriteIsUndone: a write that fails in the middle of a record
// is refused with ErrWrite and cut off the segment, which goes on: no new
// segment per failed write, and every record acknowledged before and
// after it is read back.
func TestFailedWriteIsUndone(t *testing.T) {
	for _, tc := range []struct {
		name       string
		short      bool
		truncFails bool
	}{
		{"error", false, false},
		{"short write", true, false},
		{"undo fails too", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			// Write 1 is the segment's magic; fail 5, 6 and 9.
			f := &faults{fail: map[int]bool{5: true, 6: true, 9: true}, short: tc.short, truncFails: tc.truncFails}
			s := open(t, dir, Options{openFile: f.open})
			from := s.Tail()
			c, _ := s.Cursor("am", &from)
			var acked []int
			for i := range 12 {
				err := s.Append([]*alert.Wire{wire(i)})
				switch {
				case err == nil:
					acked = append(acked, i)
				case !errors.Is(err, ErrWrite):
					t.Fatalf("append %d: %v, want ErrWrite", i, err)
				}
			}
			if len(acked) == 12 || len(acked) < 8 {
				t.Fatalf("acknowledged %v", acked)
			}
			segs := len(segmentFiles(t, dir))
			if !tc.truncFails && segs != 1 {
				t.Fatalf("%d segments: a failed write must not start a new one", segs)
			}
			got, _ := readAll(c)
			if !slices.Equal(got, acked) {
				t.Fatalf("read %v, acknowledged %v", got, acked)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = open(t, dir, Options{})
			defer s.Close()
			from = s.Tail()
			c, _ = s.Cursor("again", &from)
			if got, _ := readAll(c); !slices.Equal(got, acked) {
				t.Fatalf("after a restart read %v, acknowledged %v", got, acked)
			}
		})
	}
}

// TestOpenOnAFullDisk: a spool that cannot start a segment (the disk is
// full) still opens, so that what it holds is delivered; it refuses
// writes and says it is failing until a write works again, which the
// housekeeping tries on its own.
func TestOpenOnAFullDisk(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	for i := range 3 {
		if err := s.Append([]*alert.Wire{wire(i)}); err != nil {
			t.Fatal(err)
		}
	}
	crash(s)

	full := true
	var mu sync.Mutex
	openFile := func(path string) (segmentFile, error) {
		mu.Lock()
		defer mu.Unlock()
		if full {
			return nil, errors.New("injected: no space left on device")
		}
		return createSegment(path)
	}
	s, err := Open(dir, Options{openFile: openFile}, logger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("Open on a full disk: %v", err)
	}
	defer s.Close()
	if !s.Failing() {
		t.Error("not failing on a full disk")
	}
	from := s.Tail()
	c, _ := s.Cursor("am", &from)
	if got, _ := readAll(c); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("read %v, want what the disk holds", got)
	}
	if err := s.Append([]*alert.Wire{wire(3)}); !errors.Is(err, ErrWrite) {
		t.Fatalf("append on a full disk: %v, want ErrWrite", err)
	}
	s.tick()
	if !s.Failing() {
		t.Error("a tick on a full disk cleared the failure")
	}
	mu.Lock()
	full = false
	mu.Unlock()
	s.tick()
	if s.Failing() {
		t.Fatal("still failing once the disk has room")
	}
	if err := s.Append([]*alert.Wire{wire(4)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := readAll(c); !slices.Equal(got, []int{4}) {
		t.Fatalf("read %v after the disk had room, want [4]", got)
	}
}
