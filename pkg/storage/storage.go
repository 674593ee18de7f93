// Package storage is falco-am-bridge's durable queue: accepted alerts are
// appended to segment files before the bridge answers, replayed into the
// Alertmanager queues after a crash or restart, and trimmed once every queue
// is done with them.
//
// A segment is a file of records, each a 4-byte length, a 4-byte CRC-32C
// and the alert as JSON. A segment counts the queue entries that still need
// its records (alertmanager.Ack); once it is no longer written to and the
// count is zero, the file is deleted. A torn record at the end of a segment
// (a crash in the middle of a write) ends the replay of that segment; a
// write that fails seals its segment, so the records after it go to a new
// one and are not lost behind the torn record.
//
// Disk use is bounded twice: a segment goes as soon as no queue needs its
// records (a queue that coalesces alerts lets go of the records it merged
// away), and MaxBytes caps the whole directory; past it, Append refuses
// with ErrFull.
//
// Written records reach the operating system before Append returns, so
// they survive the bridge being killed (SIGKILL included). They reach the
// disk, surviving a power loss, when synced: every FsyncInterval, or within
// Append when the interval is zero.
package storage

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
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
	"github.com/prometheus/common/model"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alertmanager"
)

const (
	segmentSuffix = ".seg"
	headerSize    = 8
	// maxRecord bounds one record, so a corrupt length cannot make the
	// replay allocate gigabytes.
	maxRecord = 16 << 20
	// DefaultSegmentBytes is the size after which a segment is closed and
	// a new one started. A segment goes only when no queue needs any of
	// its records, so this is the slack of the disk bound.
	DefaultSegmentBytes = 4 << 20
	// DefaultMaxBytes caps the directory when Options.MaxBytes is zero.
	DefaultMaxBytes = 256 << 20
)

// ErrFull is returned by Append when writing would take the directory past
// Options.MaxBytes.
var ErrFull = errors.New("the durable queue is full (storage.max_bytes)")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Options tune a Store.
type Options struct {
	// FsyncInterval is how often written records are synced to disk; zero
	// syncs within every Append.
	FsyncInterval time.Duration
	SegmentBytes  int64
	// MaxBytes caps the bytes of every segment together; zero means
	// DefaultMaxBytes.
	MaxBytes int64

	// openFile creates a segment file; tests inject faults through it.
	openFile func(path string) (segmentFile, error)
}

// segmentFile is what a Store needs of the file it writes.
type segmentFile interface {
	io.Writer
	Sync() error
	Close() error
}

func createSegment(path string) (segmentFile, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
}

// Store is the durable queue in one directory.
type Store struct {
	dir     string
	opts    Options
	logger  *slog.Logger
	metrics *metrics

	mu     sync.Mutex // guards writing: active, nextID, dirty, closed
	active *Segment
	nextID uint64
	dirty  bool
	closed bool

	// liveMu guards live apart from mu: a segment's last Done can come
	// while mu is held (when rotating).
	liveMu sync.Mutex
	live   map[uint64]*Segment // every segment with a file, active included
	// replay is the segments left by a previous run, oldest first, until
	// Replay has read them.
	replay []*Segment
	// diskBytes is the size of every segment file together.
	diskBytes atomic.Int64

	stop chan struct{}
	done chan struct{}
}

// Segment is one file of records. It is the alertmanager.Ack of its
// records: Add and Done count the queue entries that still need them.
type Segment struct {
	store   *Store
	id      uint64
	path    string
	file    segmentFile // nil once closed
	size    int64       // guarded by Store.mu while active; fixed once sealed
	pending atomic.Int64
	sealed  atomic.Bool // no longer written to
	removed atomic.Bool
}

// Add counts n more holders of the segment's records.
func (s *Segment) Add(n int) { s.pending.Add(int64(n)) }

// Done is called once per holder when it is done; the file of a sealed
// segment goes when the last holder is done.
func (s *Segment) Done() {
	if s.pending.Add(-1) == 0 && s.sealed.Load() {
		s.store.remove(s)
	}
}

// Open opens (creating it if needed) the store in dir. What a previous run
// left is read back by Replay; then call ReplayDone.
func Open(dir string, opts Options, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.openFile == nil {
		opts.openFile = createSegment
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("storage.path: %w", err)
	}
	s := &Store{
		dir: dir, opts: opts, logger: logger, metrics: newMetrics(reg),
		live: map[uint64]*Segment{}, stop: make(chan struct{}), done: make(chan struct{}),
	}
	ids, err := s.segmentIDs()
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		seg := &Segment{store: s, id: id, path: s.segmentPath(id)}
		fi, err := os.Stat(seg.path)
		if err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
		seg.size = fi.Size()
		s.diskBytes.Add(seg.size)
		// Held until ReplayDone, so it is not removed while being queued.
		seg.pending.Store(1)
		seg.sealed.Store(true)
		s.live[id] = seg
		s.replay = append(s.replay, seg)
		s.nextID = id + 1
	}
	s.metrics.diskBytes.Set(float64(s.diskBytes.Load()))
	if err := s.rotateLocked(); err != nil {
		return nil, err
	}
	go s.loop()
	return s, nil
}

// Replay reads back every alert left by a previous run, oldest first, and
// hands each to fn with the segment that holds it (the alert's Ack). It
// reads one record at a time, so memory is what fn keeps, not the size of
// the files. It returns the number of alerts replayed.
func (s *Store) Replay(fn func(a *alertmanager.Alert, ack *Segment) error) (int, error) {
	n := 0
	for _, seg := range s.replay {
		err := s.read(seg, func(a *alertmanager.Alert) error {
			n++
			return fn(a, seg)
		})
		if err != nil {
			return n, err
		}
	}
	s.replay = nil
	s.metrics.replayed.Add(float64(n))
	return n, nil
}

// ReplayDone releases the hold Open put on the replayed segments; call it
// once every replayed alert is queued.
func (s *Store) ReplayDone() {
	s.mu.Lock()
	active := s.active
	s.mu.Unlock()
	s.liveMu.Lock()
	var old []*Segment
	for _, seg := range s.live {
		if seg != active {
			old = append(old, seg)
		}
	}
	s.liveMu.Unlock()
	for _, seg := range old {
		seg.Done()
	}
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

// record is an alert as stored.
type record struct {
	Labels       map[string]string `json:"l"`
	Annotations  map[string]string `json:"a,omitempty"`
	StartsAt     time.Time         `json:"s"`
	EndsAt       time.Time         `json:"e"`
	GeneratorURL string            `json:"g,omitempty"`
}

func encode(buf []byte, a *alertmanager.Alert) ([]byte, error) {
	r := record{Labels: make(map[string]string, len(a.Labels)), StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: a.GeneratorURL}
	for k, v := range a.Labels {
		r.Labels[string(k)] = string(v)
	}
	if len(a.Annotations) > 0 {
		r.Annotations = make(map[string]string, len(a.Annotations))
		for k, v := range a.Annotations {
			r.Annotations[string(k)] = string(v)
		}
	}
	payload, err := json.Marshal(r)
	if err != nil {
		return buf, err
	}
	var h [headerSize]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[4:8], crc32.Checksum(payload, crcTable))
	buf = append(buf, h[:]...)
	return append(buf, payload...), nil
}

func decode(payload []byte) (*alertmanager.Alert, error) {
	var r record
	if err := json.Unmarshal(payload, &r); err != nil {
		return nil, err
	}
	a := &alertmanager.Alert{
		Labels: make(model.LabelSet, len(r.Labels)), StartsAt: r.StartsAt, EndsAt: r.EndsAt, GeneratorURL: r.GeneratorURL,
	}
	for k, v := range r.Labels {
		a.Labels[model.LabelName(k)] = model.LabelValue(v)
	}
	if len(r.Annotations) > 0 {
		a.Annotations = make(model.LabelSet, len(r.Annotations))
		for k, v := range r.Annotations {
			a.Annotations[model.LabelName(k)] = model.LabelValue(v)
		}
	}
	return a, nil
}

// read hands each alert of a segment to fn, stopping at the first torn or
// corrupt record.
func (s *Store) read(seg *Segment, fn func(*alertmanager.Alert) error) error {
	f, err := os.Open(seg.path)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	good := 0
	var h [headerSize]byte
	var payload []byte
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			if !errors.Is(err, io.EOF) {
				s.torn(seg, good, err)
			}
			return nil
		}
		n := binary.LittleEndian.Uint32(h[0:4])
		if n > maxRecord {
			s.torn(seg, good, fmt.Errorf("record length %d", n))
			return nil
		}
		if cap(payload) < int(n) {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			s.torn(seg, good, err)
			return nil
		}
		if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(h[4:8]) {
			s.torn(seg, good, errors.New("checksum mismatch"))
			return nil
		}
		a, err := decode(payload)
		if err != nil {
			s.torn(seg, good, err)
			return nil
		}
		good++
		if err := fn(a); err != nil {
			return err
		}
	}
}

func (s *Store) torn(seg *Segment, good int, err error) {
	s.metrics.corrupt.Inc()
	s.logger.Warn("durable queue: segment ends in a torn or corrupt record (a crash while writing?); the records before it are kept",
		"segment", seg.path, "records", good, "err", err)
}

// Append writes alerts to the active segment and returns it, already held
// once: queue every written alert with it as the Ack, then call its Done.
//
// Each alert is encoded on its own: one that cannot be is not written, and
// its error is in failed under its index, while the others are written.
// err is for the write as a whole (ErrFull included): then nothing was
// written.
func (s *Store) Append(alerts []*alertmanager.Alert) (seg *Segment, failed map[int]error, err error) {
	buf := make([]byte, 0, 1024*len(alerts))
	written := 0
	for i, a := range alerts {
		next, err := encode(buf, a)
		if err != nil {
			if failed == nil {
				failed = map[int]error{}
			}
			failed[i] = err
			continue
		}
		buf = next
		written++
	}
	if written == 0 {
		return nil, failed, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, failed, errors.New("the durable queue is closed")
	}
	if s.diskBytes.Load()+int64(len(buf)) > s.opts.MaxBytes {
		// A done active segment still counts; let it go first.
		if s.active.size > 0 && s.active.pending.Load() == 0 {
			if err := s.rotateLocked(); err != nil {
				s.logger.Error("durable queue: starting a new segment failed", "err", err)
			}
		}
		if s.diskBytes.Load()+int64(len(buf)) > s.opts.MaxBytes {
			return nil, failed, ErrFull
		}
	}
	if err := s.writeLocked(buf); err != nil {
		// The segment now ends in a torn record, and replay stops
		// there: seal it so what comes next is not lost behind it,
		// and try once more in a new segment.
		s.logger.Error("durable queue: write failed; sealing the segment and trying a new one", "segment", s.active.path, "err", err)
		if rerr := s.rotateLocked(); rerr != nil {
			return nil, failed, errors.Join(err, rerr)
		}
		if err := s.writeLocked(buf); err != nil {
			if rerr := s.rotateLocked(); rerr != nil {
				s.logger.Error("durable queue: starting a new segment failed", "err", rerr)
			}
			return nil, failed, err
		}
	}
	seg = s.active
	seg.Add(1)
	s.metrics.records.Add(float64(written))
	if s.opts.FsyncInterval <= 0 {
		if err := s.syncLocked(); err != nil {
			seg.Done()
			return nil, failed, err
		}
	} else {
		s.dirty = true
	}
	if seg.size >= s.opts.SegmentBytes {
		if err := s.rotateLocked(); err != nil {
			s.logger.Error("durable queue: starting a new segment failed; writing on", "err", err)
		}
	}
	return seg, failed, nil
}

// writeLocked writes buf to the active segment; a short write is an error.
func (s *Store) writeLocked(buf []byte) error {
	seg := s.active
	n, err := seg.file.Write(buf)
	if n > 0 {
		seg.size += int64(n)
		s.diskBytes.Add(int64(n))
		s.metrics.diskBytes.Set(float64(s.diskBytes.Load()))
		s.metrics.bytes.Add(float64(n))
	}
	if err == nil && n < len(buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		s.metrics.errors.Inc()
		return fmt.Errorf("writing %s: %w", seg.path, err)
	}
	return nil
}

func (s *Store) syncLocked() error {
	start := time.Now()
	if err := s.active.file.Sync(); err != nil {
		s.metrics.errors.Inc()
		return fmt.Errorf("syncing %s: %w", s.active.path, err)
	}
	s.metrics.fsync.Observe(time.Since(start).Seconds())
	s.dirty = false
	return nil
}

// rotateLocked seals the active segment, if any, and starts a new one.
func (s *Store) rotateLocked() error {
	id := s.nextID
	f, err := s.opts.openFile(s.segmentPath(id))
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	if old := s.active; old != nil {
		if s.dirty {
			_ = s.syncLocked()
		}
		_ = old.file.Close()
		old.file = nil
		// Held while sealing, so Done cannot miss the moment.
		old.Add(1)
		old.sealed.Store(true)
		defer old.Done()
	}
	s.nextID = id + 1
	seg := &Segment{store: s, id: id, path: s.segmentPath(id), file: f}
	s.active = seg
	s.liveMu.Lock()
	s.live[id] = seg
	s.metrics.segments.Set(float64(len(s.live)))
	s.liveMu.Unlock()
	return syncDir(s.dir)
}

func (s *Store) remove(seg *Segment) {
	if !seg.removed.CompareAndSwap(false, true) {
		return
	}
	if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.logger.Error("durable queue: removing a delivered segment failed", "segment", seg.path, "err", err)
	}
	s.liveMu.Lock()
	delete(s.live, seg.id)
	s.metrics.segments.Set(float64(len(s.live)))
	s.liveMu.Unlock()
	s.diskBytes.Add(-seg.size)
	s.metrics.diskBytes.Set(float64(s.diskBytes.Load()))
}

// loop syncs every FsyncInterval, and starts a new segment when every
// record of the active one is done, so a restart replays little.
func (s *Store) loop() {
	defer close(s.done)
	interval := s.opts.FsyncInterval
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		if s.dirty {
			if err := s.syncLocked(); err != nil {
				s.logger.Error("durable queue: sync failed", "err", err)
			}
		}
		if s.active.size > 0 && s.active.pending.Load() == 0 {
			if err := s.rotateLocked(); err != nil {
				s.logger.Error("durable queue: starting a new segment failed", "err", err)
			}
		}
		s.mu.Unlock()
	}
}

// Close syncs and closes the active segment. What is not done stays on
// disk for the next Open.
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
	err := s.active.file.Sync()
	if cerr := s.active.file.Close(); err == nil {
		err = cerr
	}
	s.active.file = nil
	if s.active.size == 0 {
		_ = os.Remove(s.active.path)
	}
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

type metrics struct {
	records   prometheus.Counter
	bytes     prometheus.Counter
	replayed  prometheus.Counter
	corrupt   prometheus.Counter
	errors    prometheus.Counter
	segments  prometheus.Gauge
	diskBytes prometheus.Gauge
	fsync     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "falco_am_bridge", "storage"
	m := &metrics{
		records:   prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "records_written_total", Help: "Alerts written to the durable queue."}),
		bytes:     prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "written_bytes_total", Help: "Bytes written to the durable queue."}),
		replayed:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "records_replayed_total", Help: "Alerts read back from the durable queue at start."}),
		corrupt:   prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "torn_segments_total", Help: "Segments whose replay stopped at a torn or corrupt record."}),
		errors:    prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "errors_total", Help: "Failed writes and syncs of the durable queue."}),
		segments:  prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "segments", Help: "Segment files on disk."}),
		diskBytes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "bytes", Help: "Bytes of every segment file together; storage.max_bytes caps it."}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "fsync_duration_seconds", Help: "Duration of syncs of the durable queue.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.bytes, m.replayed, m.corrupt, m.errors, m.segments, m.diskBytes, m.fsync)
	}
	return m
}
