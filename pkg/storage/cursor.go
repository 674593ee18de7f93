package storage

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// Cursor reads the spool for one reader (an Alertmanager), in order, from
// where it was. Its mark says up to where its owner is done; the spool
// keeps every record from the lowest mark on, and saves the marks.
type Cursor struct {
	s    *Store
	name string

	mu     sync.Mutex
	seg    *segment
	r      *segReader
	idx    int64 // records read in seg
	lost   int64 // records skipped by drop-oldest since Lost was called
	mark   func(read Position) Position
	closed bool
}

// Cursor returns the cursor called name. It starts where a previous run
// left the cursor of that name; else at from, when given; else at the
// head, so that it reads only what is appended from now on.
func (s *Store) Cursor(name string, from *Position) (*Cursor, error) {
	head := s.Head() // before curMu: Store.mu comes first
	s.curMu.Lock()
	defer s.curMu.Unlock()
	if _, ok := s.cursors[name]; ok {
		return nil, fmt.Errorf("storage: a cursor %q is open already", name)
	}
	start := head
	if p, ok := s.saved[name]; ok {
		start = p
		delete(s.saved, name)
	} else if from != nil {
		start = *from
	}
	c := &Cursor{s: s, name: name}
	if err := c.seek(start); err != nil {
		return nil, err
	}
	s.cursors[name] = c
	return c, nil
}

// Saved returns the marks of a previous run that no cursor claimed yet.
func (s *Store) Saved() map[string]Position {
	s.curMu.Lock()
	defer s.curMu.Unlock()
	out := make(map[string]Position, len(s.saved))
	for k, v := range s.saved {
		out[k] = v
	}
	return out
}

// Forget lets go of the saved marks of names: no cursor will claim them.
func (s *Store) Forget(names ...string) {
	s.curMu.Lock()
	defer s.curMu.Unlock()
	for _, n := range names {
		delete(s.saved, n)
	}
}

// seek puts the cursor at p, or at the first record after p that is
// still kept.
func (c *Cursor) seek(p Position) error {
	seg := c.s.segmentFrom(p.Segment)
	if seg == nil {
		return fmt.Errorf("storage: no segment from %d", p.Segment)
	}
	off := int64(len(fileMagic))
	if seg.id == p.Segment {
		off = min(max(p.Offset, off), seg.size.Load())
	}
	r, err := openReader(seg.path, int64(len(fileMagic)))
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	c.seg, c.r, c.idx = seg, r, 0
	// Count the records before off, for Backlog.
	for r.pos < off {
		if _, _, _, err := r.next(off); err != nil {
			break
		}
		c.idx++
	}
	r.pos = off
	return nil //nolint:nilerr // the count stops where the segment is unreadable; reading it reports why
}

// SetMark gives the cursor its owner's mark: given the read position, up
// to where the owner is done. Without one, the mark is the read position.
func (c *Cursor) SetMark(mark func(read Position) Position) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mark = mark
}

// Mark is the position before which the owner is done with every record.
func (c *Cursor) Mark() Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	read := c.posLocked()
	if c.mark == nil {
		return read
	}
	return c.mark(read)
}

func (c *Cursor) posLocked() Position { return Position{Segment: c.seg.id, Offset: c.r.pos} }

// Fill reads records while room says there is room, handing each to take,
// and returns how many it read. The mark cannot be taken meanwhile, so
// that a record read is always either before the read position or held
// by the owner.
func (c *Cursor) Fill(room func() bool, take func(Record)) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for !c.closed && room() {
		rec, ok := c.nextLocked()
		if !ok {
			break
		}
		take(rec)
		n++
	}
	return n
}

func (c *Cursor) nextLocked() (Record, bool) {
	for {
		seg := c.seg
		// sealed first: once sealed, size is final.
		sealed := seg.sealed.Load()
		at := c.r.pos
		w, pos, skipped, err := c.r.next(seg.size.Load())
		if skipped > 0 {
			seg.noteCorrupt(c.s, at, skipped)
		}
		if err == nil {
			c.idx++
			return Record{Wire: w, Pos: Position{Segment: seg.id, Offset: pos}}, true
		}
		if !errors.Is(err, io.EOF) || !sealed {
			return Record{}, false
		}
		next := c.s.segmentFrom(seg.id + 1)
		if next == nil {
			// No segment after it yet (none could be started: the disk
			// is full). Let go of the file, which is read to its end,
			// so that deleting it frees its room.
			c.r.close()
			return Record{}, false
		}
		c.moveTo(next)
	}
}

func (c *Cursor) moveTo(seg *segment) {
	c.r.close()
	r, err := openReader(seg.path, int64(len(fileMagic)))
	if err != nil {
		// The file went (dropped as the oldest): the next segment is read.
		r = &segReader{pos: seg.size.Load()}
	}
	c.seg, c.r, c.idx = seg, r, 0
}

// skipSegment moves the cursor past seg, which is being dropped, and says
// how many of its records it had not read.
func (c *Cursor) skipSegment(seg *segment) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seg != seg {
		return 0
	}
	lost := max(0, seg.records.Load()-c.idx)
	c.lost += lost
	if next := c.s.segmentFrom(seg.id + 1); next != nil {
		c.moveTo(next)
	}
	return lost
}

// Lost returns how many records this cursor lost to drop-oldest since it
// was last called.
func (c *Cursor) Lost() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.lost
	c.lost = 0
	return n
}

// Backlog is the number of records not read yet.
func (c *Cursor) Backlog() int64 {
	c.mu.Lock()
	seg, idx := c.seg, c.idx
	c.mu.Unlock()
	n := max(0, seg.records.Load()-idx)
	c.s.segMu.RLock()
	defer c.s.segMu.RUnlock()
	for _, s := range c.s.segs {
		if s.id > seg.id {
			n += s.records.Load()
		}
	}
	return n
}

// Close lets go of the cursor: the spool no longer keeps records for it,
// and its mark is not saved any more.
func (c *Cursor) Close() {
	s := c.s
	s.curMu.Lock()
	defer s.curMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	c.r.close()
	if s.cursors[c.name] == c {
		delete(s.cursors, c.name)
	}
}
