// Package storage is falco-am-bridge's durable queue: accepted alerts are
// appended to segment files before the bridge answers, replayed into the
// Alertmanager queues after a crash or restart, and trimmed once every queue
// is done with them.
//
// A segment is a file of records, each a 4-byte length, a 4-byte CRC-32C
// and the alert as JSON. A segment counts the queue entries that still need
// its records (alertmanager.Ack); once it is no longer written to and the
// count is zero, the file is deleted. A torn record at the end of a segment
// (a crash in the middle of a write) ends the replay of that segment.
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
	// a new one started.
	DefaultSegmentBytes = 16 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Options tune a Store.
type Options struct {
	// FsyncInterval is how often written records are synced to disk; zero
	// syncs within every Append.
	FsyncInterval time.Duration
	SegmentBytes  int64
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

	stop chan struct{}
	done chan struct{}
}

// Segment is one file of records. It is the alertmanager.Ack of its
// records: Add and Done count the queue entries that still need them.
type Segment struct {
	store   *Store
	id      uint64
	path    string
	file    *os.File // nil once closed
	size    int64
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

// Replayed is an alert read back from disk, with the segment it holds.
type Replayed struct {
	Alert *alertmanager.Alert
	Ack   *Segment
}

// Open opens (creating it if needed) the store in dir and reads back every
// alert left by a previous run, oldest first. The caller queues each with
// its Ack, then calls ReplayDone.
func Open(dir string, opts Options, logger *slog.Logger, reg prometheus.Registerer) (*Store, []Replayed, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("storage.path: %w", err)
	}
	s := &Store{
		dir: dir, opts: opts, logger: logger, metrics: newMetrics(reg),
		live: map[uint64]*Segment{}, stop: make(chan struct{}), done: make(chan struct{}),
	}
	ids, err := s.segmentIDs()
	if err != nil {
		return nil, nil, err
	}
	var replayed []Replayed
	for _, id := range ids {
		seg := &Segment{store: s, id: id, path: s.segmentPath(id)}
		// Held until ReplayDone, so it is not removed while being queued.
		seg.pending.Store(1)
		seg.sealed.Store(true)
		alerts, err := s.read(seg)
		if err != nil {
			return nil, nil, err
		}
		for _, a := range alerts {
			replayed = append(replayed, Replayed{Alert: a, Ack: seg})
		}
		s.live[id] = seg
		s.nextID = id + 1
	}
	if err := s.rotateLocked(); err != nil {
		return nil, nil, err
	}
	s.metrics.replayed.Add(float64(len(replayed)))
	go s.loop()
	return s, replayed, nil
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

// read returns the alerts of a segment, stopping at the first torn or
// corrupt record.
func (s *Store) read(seg *Segment) ([]*alertmanager.Alert, error) {
	f, err := os.Open(seg.path)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 256<<10)
	var alerts []*alertmanager.Alert
	var h [headerSize]byte
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			if !errors.Is(err, io.EOF) {
				s.torn(seg, len(alerts), err)
			}
			return alerts, nil
		}
		n := binary.LittleEndian.Uint32(h[0:4])
		if n > maxRecord {
			s.torn(seg, len(alerts), fmt.Errorf("record length %d", n))
			return alerts, nil
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			s.torn(seg, len(alerts), err)
			return alerts, nil
		}
		if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(h[4:8]) {
			s.torn(seg, len(alerts), errors.New("checksum mismatch"))
			return alerts, nil
		}
		a, err := decode(payload)
		if err != nil {
			s.torn(seg, len(alerts), err)
			return alerts, nil
		}
		alerts = append(alerts, a)
	}
}

func (s *Store) torn(seg *Segment, good int, err error) {
	s.metrics.corrupt.Inc()
	s.logger.Warn("durable queue: segment ends in a torn or corrupt record (a crash while writing?); the records before it are kept",
		"segment", seg.path, "records", good, "err", err)
}

// Append writes alerts to the active segment and returns it, already held
// once: queue every alert with it as the Ack, then call its Done.
func (s *Store) Append(alerts []*alertmanager.Alert) (*Segment, error) {
	buf := make([]byte, 0, 1024*len(alerts))
	var err error
	for _, a := range alerts {
		if buf, err = encode(buf, a); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("the durable queue is closed")
	}
	seg := s.active
	if _, err := seg.file.Write(buf); err != nil {
		s.metrics.errors.Inc()
		return nil, fmt.Errorf("writing %s: %w", seg.path, err)
	}
	seg.size += int64(len(buf))
	seg.Add(1)
	s.metrics.records.Add(float64(len(alerts)))
	s.metrics.bytes.Add(float64(len(buf)))
	if s.opts.FsyncInterval <= 0 {
		if err := s.syncLocked(); err != nil {
			seg.Done()
			return nil, err
		}
	} else {
		s.dirty = true
	}
	if seg.size >= s.opts.SegmentBytes {
		if err := s.rotateLocked(); err != nil {
			s.logger.Error("durable queue: starting a new segment failed; writing on", "err", err)
		}
	}
	return seg, nil
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
	f, err := os.OpenFile(s.segmentPath(id), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
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
	records  prometheus.Counter
	bytes    prometheus.Counter
	replayed prometheus.Counter
	corrupt  prometheus.Counter
	errors   prometheus.Counter
	segments prometheus.Gauge
	fsync    prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "falco_am_bridge", "storage"
	m := &metrics{
		records:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "records_written_total", Help: "Alerts written to the durable queue."}),
		bytes:    prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "written_bytes_total", Help: "Bytes written to the durable queue."}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "records_replayed_total", Help: "Alerts read back from the durable queue at start."}),
		corrupt:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "torn_segments_total", Help: "Segments whose replay stopped at a torn or corrupt record."}),
		errors:   prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "errors_total", Help: "Failed writes and syncs of the durable queue."}),
		segments: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "segments", Help: "Segment files on disk."}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "fsync_duration_seconds", Help: "Duration of syncs of the durable queue.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.bytes, m.replayed, m.corrupt, m.errors, m.segments, m.fsync)
	}
	return m
}
