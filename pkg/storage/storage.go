// Package storage is falco-am-bridge's durable spool, and with
// --storage.path it is the queue: every accepted alert is appended to a
// segment file before the bridge answers, and each Alertmanager reads the
// spool through a Cursor of its own, in order, into a small window in
// memory. What waits for an Alertmanager that is slow or away waits here,
// on disk, bounded only by Options.MaxBytes.
//
// A record is the alert's wire encoding (alert.Wire) behind a header with
// a checksum (see frame.go), so reading back costs no re-encoding. A
// corrupt record is skipped, counted, and the reader goes on at the next
// valid one; a segment that lost records is kept, renamed, for
// inspection.
//
// Each cursor's owner says up to where it is done (its mark: every record
// before it is delivered, rejected, expired or superseded by a newer one
// with the same labels). The marks are saved with the segments, so a
// restart resumes where each Alertmanager was, and a segment is deleted
// once every mark is past it.
//
// Written records reach the operating system before Append returns, so
// they survive the bridge being killed (SIGKILL included). They reach the
// disk, surviving a power loss, when synced: every FsyncInterval, or within
// Append when the interval is zero.
package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/defaults"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/ratelog"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/tick"
)

const (
	segmentSuffix = ".seg"
	// corruptSuffix is added to the name of a segment that lost records
	// to corruption, instead of deleting it once it is done.
	corruptSuffix = ".corrupt"
	marksFile     = "cursors.json"
	// DefaultSegmentBytes is the size after which a segment is closed and
	// a new one started. A segment goes only when every cursor is past
	// it, so this is the slack of the disk bound.
	DefaultSegmentBytes = 4 << 20
	// DefaultMaxBytes caps the directory when Options.MaxBytes is zero.
	DefaultMaxBytes = 256 << 20
)

// WhenFull says what Append does when the spool is at Options.MaxBytes.
type WhenFull string

const (
	// DropOldest deletes the oldest segment, counting what it held that
	// some Alertmanager had not read: the oldest alerts are the nearest
	// to their endsAt, and Falco does not retry a refused event.
	DropOldest WhenFull = "drop-oldest"
	// Refuse makes Append fail with ErrFull: the sender keeps the event
	// and can retry (falcosidekick, a proxy), while Falco drops it.
	Refuse WhenFull = "refuse"
)

// ErrFull is returned by Append when the spool is at Options.MaxBytes and
// WhenFull is Refuse.
var ErrFull = errors.New("the durable queue is full (storage.max_bytes)")

// ErrWrite is returned, wrapped, by Append when the disk refused the
// write (a full disk): nothing of it was kept.
var ErrWrite = errors.New("writing the durable queue failed")

// Options tune a Store.
type Options struct {
	// FsyncInterval is how often written records are synced to disk,
	// and the marks saved; zero syncs within every Append (and saves the
	// marks every second).
	FsyncInterval time.Duration
	SegmentBytes  int64
	// MaxBytes caps the bytes of every segment together; zero means
	// DefaultMaxBytes.
	MaxBytes int64
	// WhenFull is DropOldest when empty.
	WhenFull WhenFull

	// openFile creates a segment file; tests inject faults through it.
	openFile func(path string) (segmentFile, error)
}

// segmentFile is what a Store needs of the file it writes.
type segmentFile interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Close() error
}

func createSegment(path string) (segmentFile, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
}

// Position is a place in the spool: a segment and a byte offset in it.
type Position struct {
	Segment uint64 `json:"segment"`
	Offset  int64  `json:"offset"`
}

// Before orders positions.
func (p Position) Before(q Position) bool {
	return p.Segment < q.Segment || p.Segment == q.Segment && p.Offset < q.Offset
}

// Record is an alert read from the spool and where it was.
type Record struct {
	Wire *alert.Wire
	Pos  Position
}

// segment is one file of records.
type segment struct {
	id      uint64
	path    string
	size    atomic.Int64 // bytes readers may read: whole records only
	records atomic.Int64 // valid records in it
	sealed  atomic.Bool  // no longer written to; size is final
	file    segmentFile  // while active, guarded by Store.mu

	corruptMu sync.Mutex
	corrupt   map[int64]int64 // offset of a skipped stretch → its bytes
}

// Store is the durable spool in one directory.
type Store struct {
	dir     string
	opts    Options
	logger  *slog.Logger
	metrics *metrics

	mu         sync.Mutex // guards writing: active, nextID, dirty, closed, needRotate
	active     *segment
	nextID     uint64
	dirty      bool
	closed     bool
	needRotate bool // a failed write could not be undone
	failing    atomic.Bool
	writeLog   *ratelog.Sampler
	fullLog    *ratelog.Sampler
	marksLog   *ratelog.Sampler

	segMu sync.RWMutex
	segs  []*segment // oldest first; the active one last, unless none could be started

	curMu   sync.Mutex
	cursors map[string]*Cursor
	saved   map[string]Position // marks of a previous run not claimed by a cursor yet
	written map[string]Position // what the marks file holds

	diskBytes atomic.Int64

	stop chan struct{}
	done chan struct{}
}

// Open opens (creating it if needed) the spool in dir, with the marks a
// previous run saved.
func Open(dir string, opts Options, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	defaults.Set(&opts.SegmentBytes, DefaultSegmentBytes)
	defaults.Set(&opts.MaxBytes, DefaultMaxBytes)
	switch opts.WhenFull {
	case "":
		opts.WhenFull = DropOldest
	case DropOldest, Refuse:
	default:
		return nil, fmt.Errorf("storage.when_full: %q is not %q or %q", opts.WhenFull, DropOldest, Refuse)
	}
	if opts.openFile == nil {
		opts.openFile = createSegment
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("storage.path: %w", err)
	}
	s := &Store{
		dir: dir, opts: opts, logger: logger, metrics: newMetrics(reg),
		cursors: map[string]*Cursor{}, saved: map[string]Position{},
		writeLog: ratelog.New(10 * time.Second), fullLog: ratelog.New(10 * time.Second), marksLog: ratelog.New(10 * time.Second),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	ids, err := s.segmentIDs()
	if err != nil {
		return nil, err
	}
	var legacy []string
	for _, id := range ids {
		seg, isLegacy, err := s.openSegment(id)
		if err != nil {
			return nil, err
		}
		if isLegacy {
			legacy = append(legacy, seg.path)
			s.nextID = id + 1
			continue
		}
		s.segs = append(s.segs, seg)
		s.diskBytes.Add(seg.size.Load())
		s.nextID = id + 1
	}
	if err := s.loadMarks(); err != nil {
		return nil, err
	}
	if err := s.rotateLocked(); err != nil {
		// A full disk must not keep the bridge from starting: what is on
		// disk can still be delivered, which frees room. Until a segment
		// can be started, writes are refused and readiness fails.
		s.active = &segment{id: s.nextID}
		s.active.size.Store(int64(len(fileMagic)))
		s.needRotate = true
		_ = s.writeFailed(err)
	}
	if err := s.migrate(legacy); err != nil {
		return nil, err
	}
	s.metrics.diskBytes.Set(float64(s.diskBytes.Load()))
	go s.loop()
	return s, nil
}

func (s *Store) segmentPath(id uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%016d%s", id, segmentSuffix))
}

func (s *Store) segmentIDs() ([]uint64, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("storage.path: %w", err)
	}
	var ids []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), segmentSuffix)
		if !ok || e.IsDir() {
			continue
		}
		id, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// openSegment reads a segment left by a previous run through once,
// counting its records and noting the corrupt stretches. isLegacy is set
// for a segment of the format before the spool became the queue.
func (s *Store) openSegment(id uint64) (seg *segment, isLegacy bool, err error) {
	seg = &segment{id: id, path: s.segmentPath(id)}
	fi, err := os.Stat(seg.path)
	if err != nil {
		return nil, false, fmt.Errorf("storage: %w", err)
	}
	r, err := openReader(seg.path, 0)
	if err != nil {
		return nil, false, fmt.Errorf("storage: %w", err)
	}
	defer r.close()
	return seg, !s.scan(seg, r, fi.Size()), nil
}

// scan reads a segment through, counting its records and noting the
// corrupt stretches, and seals it; it says false when r does not hold a
// segment of this format.
func (s *Store) scan(seg *segment, r *segReader, size int64) bool {
	defer seg.sealed.Store(true)
	if magic, ok := r.bytes(0, len(fileMagic), size); !ok || string(magic) != fileMagic {
		// Empty: a crash between creating the file and writing its magic.
		return size == 0
	}
	r.pos = int64(len(fileMagic))
	for {
		at := r.pos
		_, _, skipped, err := r.next(size)
		if skipped > 0 {
			seg.noteCorrupt(s, at, skipped)
		}
		if err != nil {
			break
		}
		seg.records.Add(1)
	}
	seg.size.Store(size)
	return true
}

// noteCorrupt counts and logs a skipped stretch once, however many
// cursors come across it.
func (seg *segment) noteCorrupt(s *Store, at, skipped int64) {
	seg.corruptMu.Lock()
	defer seg.corruptMu.Unlock()
	if seg.corrupt == nil {
		seg.corrupt = map[int64]int64{}
	}
	if _, seen := seg.corrupt[at]; seen {
		return
	}
	seg.corrupt[at] = skipped
	s.metrics.corrupt.Inc()
	s.metrics.corruptBytes.Add(float64(skipped))
	s.logger.Warn("durable queue: skipped a corrupt or torn record; reading goes on at the next valid one",
		"segment", seg.path, "offset", at, "bytes", skipped)
}

func (seg *segment) lostRecords() bool {
	seg.corruptMu.Lock()
	defer seg.corruptMu.Unlock()
	return len(seg.corrupt) > 0
}

// Append writes alerts to the spool, in order. It fails with ErrFull (when
// full and refusing) or ErrWrite (the disk refused): then nothing was
// written.
func (s *Store) Append(wires []*alert.Wire) error {
	if len(wires) == 0 {
		return nil
	}
	n := 0
	for _, w := range wires {
		n += headerSize + len(w.JSON)
	}
	buf := make([]byte, 0, n)
	for _, w := range wires {
		buf = appendRecord(buf, w)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("the durable queue is closed")
	}
	if s.needRotate {
		if err := s.rotateLocked(); err != nil {
			return s.writeFailed(fmt.Errorf("starting a new segment: %w", err))
		}
		s.needRotate = false
	}
	if err := s.makeRoomLocked(int64(len(buf))); err != nil {
		return err
	}
	seg := s.active
	written, err := seg.file.Write(buf)
	if err == nil && written < len(buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		if written > 0 {
			// Cut the torn record off, so the segment stays good and the
			// next write goes on in it.
			if terr := seg.file.Truncate(seg.size.Load()); terr != nil {
				s.needRotate = true
				seg.sealed.Store(true)
			}
		}
		return s.writeFailed(fmt.Errorf("writing %s: %w", seg.path, err))
	}
	seg.records.Add(int64(len(wires)))
	seg.size.Add(int64(len(buf)))
	s.diskBytes.Add(int64(len(buf)))
	s.metrics.diskBytes.Set(float64(s.diskBytes.Load()))
	s.metrics.bytes.Add(float64(len(buf)))
	s.metrics.records.Add(float64(len(wires)))
	if s.opts.FsyncInterval <= 0 {
		if err := s.syncLocked(); err != nil {
			return s.writeFailed(err)
		}
	} else {
		s.dirty = true
	}
	if s.failing.CompareAndSwap(true, false) {
		s.logger.Info("durable queue: writing works again")
	}
	if seg.size.Load() >= s.opts.SegmentBytes {
		if err := s.rotateLocked(); err != nil {
			s.needRotate = true
			s.logger.Error("durable queue: starting a new segment failed; trying again at the next write", "err", err)
		}
	}
	return nil
}

// writeFailed counts and logs (at most every 10 s) a refused write.
func (s *Store) writeFailed(err error) error {
	s.metrics.errors.Inc()
	s.failing.Store(true)
	if ok, n := s.writeLog.Allow(time.Now()); ok {
		s.logger.Error("durable queue: write failed; events are refused with 503 until writing works again", "err", err, "failures_since_last_line", n)
	}
	return fmt.Errorf("%w: %w", ErrWrite, err)
}

// Failing says whether the last write failed.
func (s *Store) Failing() bool { return s.failing.Load() }

// makeRoomLocked makes room for n more bytes: it first deletes what every
// cursor is done with, then, when full, drops the oldest segments or
// refuses.
func (s *Store) makeRoomLocked(n int64) error {
	if s.diskBytes.Load()+n <= s.opts.MaxBytes {
		return nil
	}
	s.trim()
	for s.diskBytes.Load()+n > s.opts.MaxBytes {
		if s.opts.WhenFull == Refuse || n > s.opts.MaxBytes {
			s.metrics.refused.Inc()
			if ok, sup := s.fullLog.Allow(time.Now()); ok {
				s.logger.Error("durable queue full (storage.max_bytes); events are refused with 503", "max_bytes", s.opts.MaxBytes, "refusals_since_last_line", sup)
			}
			return ErrFull
		}
		s.segMu.RLock()
		oldest := s.segs[0]
		s.segMu.RUnlock()
		if oldest == s.active {
			if err := s.rotateLocked(); err != nil {
				return s.writeFailed(err)
			}
		}
		s.dropOldest(oldest)
	}
	return nil
}

// dropOldest deletes the oldest segment although some cursor still needs
// it, moving those cursors on and counting what they lose.
func (s *Store) dropOldest(seg *segment) {
	lost := int64(0)
	s.curMu.Lock()
	for _, c := range s.cursors {
		lost = max(lost, c.skipSegment(seg))
	}
	for name, p := range s.saved {
		if p.Segment <= seg.id {
			s.saved[name] = Position{Segment: seg.id + 1}
		}
	}
	s.curMu.Unlock()
	s.remove(seg, false)
	s.metrics.dropped.Add(float64(lost))
	if ok, sup := s.fullLog.Allow(time.Now()); ok {
		s.logger.Error("durable queue full (storage.max_bytes); dropped its oldest segment", "segment", seg.path,
			"alerts_not_delivered_everywhere", lost, "max_bytes", s.opts.MaxBytes, "drops_since_last_line", sup)
	}
}

func (s *Store) syncLocked() error {
	start := time.Now()
	if err := s.active.file.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", s.active.path, err)
	}
	s.metrics.fsync.Observe(time.Since(start).Seconds())
	s.dirty = false
	return nil
}

// rotateLocked seals the active segment, if any, and starts a new one.
func (s *Store) rotateLocked() error {
	id := s.nextID
	path := s.segmentPath(id)
	f, err := s.opts.openFile(path)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	if _, err := f.Write([]byte(fileMagic)); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("storage: writing %s: %w", path, err)
	}
	s.nextID = id + 1
	if old := s.active; old != nil && old.file != nil {
		if s.dirty {
			if err := s.syncLocked(); err != nil {
				s.logger.Error("durable queue: sync failed", "err", err)
			}
		}
		_ = old.file.Close()
		old.file = nil
		old.sealed.Store(true)
	}
	seg := &segment{id: id, path: path, file: f}
	seg.size.Store(int64(len(fileMagic)))
	s.active = seg
	s.diskBytes.Add(seg.size.Load())
	s.segMu.Lock()
	s.segs = append(s.segs, seg)
	s.metrics.segments.Set(float64(len(s.segs)))
	s.segMu.Unlock()
	return syncDir(s.dir)
}

// segmentFrom returns the first segment whose id is id or more.
func (s *Store) segmentFrom(id uint64) *segment {
	s.segMu.RLock()
	defer s.segMu.RUnlock()
	i, _ := slices.BinarySearchFunc(s.segs, id, func(seg *segment, id uint64) int {
		switch {
		case seg.id < id:
			return -1
		case seg.id > id:
			return 1
		}
		return 0
	})
	if i == len(s.segs) {
		return nil
	}
	return s.segs[i]
}

// Head is the position after the last record written.
func (s *Store) Head() Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Position{Segment: s.active.id, Offset: s.active.size.Load()}
}

// Tail is the position of the oldest record kept.
func (s *Store) Tail() Position {
	s.segMu.RLock()
	defer s.segMu.RUnlock()
	if len(s.segs) == 0 { // nothing on disk, and no segment started yet
		return Position{Segment: s.nextID}
	}
	return Position{Segment: s.segs[0].id}
}

// trim deletes the sealed segments every cursor is past. The caller
// holds s.mu.
func (s *Store) trim() {
	low, ok := s.lowMark()
	if !ok {
		return
	}
	for {
		s.segMu.RLock()
		if len(s.segs) == 0 {
			s.segMu.RUnlock()
			return
		}
		seg := s.segs[0]
		s.segMu.RUnlock()
		if !seg.sealed.Load() || seg == s.active {
			return
		}
		read := seg.id < low.Segment || seg.id == low.Segment && low.Offset >= seg.size.Load()
		if !read {
			return
		}
		s.remove(seg, seg.lostRecords())
	}
}

// lowMark is the lowest mark of every cursor and of the marks of a
// previous run not claimed yet; ok is false when there is none, as
// nothing has said what it is done with.
func (s *Store) lowMark() (low Position, ok bool) {
	s.curMu.Lock()
	defer s.curMu.Unlock()
	for _, c := range s.cursors {
		m := c.Mark()
		if !ok || m.Before(low) {
			low, ok = m, true
		}
	}
	for _, m := range s.saved {
		if !ok || m.Before(low) {
			low, ok = m, true
		}
	}
	return low, ok
}

// remove deletes a sealed segment's file, or renames it when keep is set.
func (s *Store) remove(seg *segment, keep bool) {
	s.segMu.Lock()
	i := slices.Index(s.segs, seg)
	if i < 0 {
		s.segMu.Unlock()
		return
	}
	s.segs = slices.Delete(s.segs, i, i+1)
	s.metrics.segments.Set(float64(len(s.segs)))
	s.segMu.Unlock()
	if keep {
		if err := os.Rename(seg.path, seg.path+corruptSuffix); err != nil {
			s.logger.Error("durable queue: renaming a segment with corrupt records failed", "segment", seg.path, "err", err)
		} else {
			s.logger.Warn("durable queue: a segment with corrupt records is done; kept for inspection", "file", seg.path+corruptSuffix)
		}
	} else if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.logger.Error("durable queue: removing a delivered segment failed", "segment", seg.path, "err", err)
	}
	s.diskBytes.Add(-seg.size.Load())
	s.metrics.diskBytes.Set(float64(s.diskBytes.Load()))
}

// loop syncs and saves the marks every FsyncInterval, deletes what every
// cursor is done with, and starts a new segment when every record of the
// active one is done, so that its file can go too.
func (s *Store) loop() {
	defer close(s.done)
	interval := s.opts.FsyncInterval
	defaults.Set(&interval, time.Second)
	tick.Every(s.stop, interval, nil, s.tick)
}

func (s *Store) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirty {
		if err := s.syncLocked(); err != nil {
			s.metrics.errors.Inc()
			s.logger.Error("durable queue: sync failed", "err", err)
		}
	}
	s.saveMarks()
	s.trim()
	if s.failing.Load() {
		// Try a write again (a new segment's header): what was delivered
		// since may have freed room.
		if err := s.rotateLocked(); err == nil {
			s.needRotate = false
			s.failing.Store(false)
			s.logger.Info("durable queue: writing works again")
		}
		return
	}
	if low, ok := s.lowMark(); ok && s.active.size.Load() > int64(len(fileMagic)) &&
		low == (Position{Segment: s.active.id, Offset: s.active.size.Load()}) {
		if err := s.rotateLocked(); err != nil {
			s.logger.Error("durable queue: starting a new segment failed", "err", err)
			return
		}
		s.trim()
	}
}

// Close saves the marks and syncs and closes the active segment. What is
// not done stays on disk for the next Open.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saveMarks()
	if s.active.file == nil { // never started: the disk was full
		return nil
	}
	err := s.active.file.Sync()
	if cerr := s.active.file.Close(); err == nil {
		err = cerr
	}
	s.active.file = nil
	s.active.sealed.Store(true)
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// marks is the file of the cursors' marks.
type marks struct {
	Cursors map[string]Position `json:"cursors"`
}

func (s *Store) loadMarks() error {
	b, err := readFileLimited(filepath.Join(s.dir, marksFile), 16<<20)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	var m marks
	if err := json.Unmarshal(b, &m); err != nil {
		// The marks are written whole and renamed into place, so this
		// is not a crash; start from the oldest record, which delivers
		// again rather than lose.
		s.logger.Error("durable queue: the cursors file is unreadable; every Alertmanager starts at the oldest record", "file", marksFile, "err", err)
		return nil
	}
	for name, p := range m.Cursors {
		s.saved[name] = p
	}
	s.written = m.Cursors
	return nil
}

// saveMarks writes the marks, when they changed, to a new file renamed
// into place.
func (s *Store) saveMarks() {
	now := map[string]Position{}
	s.curMu.Lock()
	for name, c := range s.cursors {
		now[name] = c.Mark()
	}
	for name, p := range s.saved {
		now[name] = p
	}
	s.curMu.Unlock()
	if mapsEqual(now, s.written) {
		return
	}
	b, err := json.Marshal(marks{Cursors: now})
	if err == nil {
		err = writeFileAtomic(filepath.Join(s.dir, marksFile), b)
	}
	if err != nil {
		s.metrics.errors.Inc()
		if ok, n := s.marksLog.Allow(time.Now()); ok {
			s.logger.Error("durable queue: saving the cursors failed; a restart delivers again what was delivered since the last save", "err", err, "failures_since_last_line", n)
		}
		return
	}
	s.written = now
}

func mapsEqual(a, b map[string]Position) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// readFileLimited reads a regular file of at most limit bytes.
func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}
