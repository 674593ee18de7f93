package alertmanager

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/ratelog"
)

// Options tune delivery. Zero values take the defaults below, but for
// BatchWait: zero sends as soon as an alert is queued.
type Options struct {
	QueueCapacity int           // alerts per Alertmanager queue
	QueueMaxBytes int64         // bytes per queue (approximate); 0: DefaultQueueMaxBytes
	BatchSize     int           // alerts per POST at most
	BatchWait     time.Duration // how long a first alert waits for others to join its batch
	Timeout       time.Duration // per POST
	MinBackoff    time.Duration // first retry delay
	MaxBackoff    time.Duration // longest retry delay
	MaxRetryAfter time.Duration // longest Retry-After honoured
	// ResendDelay is how long an alert just delivered waits when only
	// refreshed since; negative: never.
	ResendDelay time.Duration
	// HTTPClient carries TLS, authentication and proxy settings.
	HTTPClient *http.Client
	UserAgent  string
	// Now is the clock; tests set it.
	Now func() time.Time
}

// Defaults, as Prometheus's notifier uses them where it has them. Batches
// are larger than its 256: Falco bursts are much larger than Prometheus's,
// and with one request in flight per Alertmanager a batch of 256 could
// not keep up with two cores' intake (make bench: 18,000 of 50,000 events
// dropped with 256, none with 1024).
const (
	DefaultQueueCapacity = 10000
	// DefaultQueueMaxBytes keeps a bridge inside a 256 MB pod while
	// Alertmanager is down, even with alerts near the annotation caps:
	// measured, 10,000 alerts of 4 KB annotations peak at 133 MB of RSS
	// (the queues of several Alertmanagers share the alerts they hold).
	DefaultQueueMaxBytes = 32 << 20
	DefaultBatchSize     = 1024
	DefaultTimeout       = 10 * time.Second
	DefaultMinBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff    = 10 * time.Second
	DefaultMaxRetryAfter = 5 * time.Minute
)

func (o *Options) withDefaults() {
	defer func() { o.HTTPClient = postOnly(o.HTTPClient) }()
	if o.QueueCapacity <= 0 {
		o.QueueCapacity = DefaultQueueCapacity
	}
	if o.QueueMaxBytes <= 0 {
		o.QueueMaxBytes = DefaultQueueMaxBytes
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if o.ResendDelay == 0 {
		o.ResendDelay = DefaultResendDelay
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	if o.UserAgent == "" {
		o.UserAgent = "falco-am-bridge"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

func (o *Options) now() time.Time { return o.Now() }

// Manager fans alerts out to every Alertmanager, each with its own queue
// and sender, so a slow or dead one never holds up the others.
type Manager struct {
	optsp   atomic.Pointer[Options] // replaced whole by SetOptions
	logger  *slog.Logger
	metrics *metrics

	ctx    context.Context
	cancel context.CancelFunc
	drain  chan struct{}

	mu      sync.RWMutex
	senders map[string]*sender // by Alertmanager base URL
	// pending holds alerts while no Alertmanager is known, as when a DNS
	// name has not resolved yet; the first to appear get them. It is a
	// queue without a sender running.
	pending *sender
	closed  bool
	keep    bool // Close's keep
}

// PendingQueue names, in metrics and logs, the queue that holds alerts
// while no Alertmanager is known.
const PendingQueue = "pending"

// ErrClosed is returned by Send and SendAll once Close was called.
var ErrClosed = errors.New("alertmanager manager closed")

// NewManager returns a Manager with no Alertmanagers; SetTargets adds them.
func NewManager(opts Options, logger *slog.Logger, reg prometheus.Registerer) *Manager {
	opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		logger:  logger,
		metrics: newMetrics(reg),
		ctx:     ctx,
		cancel:  cancel,
		drain:   make(chan struct{}),
		senders: map[string]*sender{},
	}
	m.optsp.Store(&opts)
	m.pending = m.newSender(PendingQueue, nil)
	m.metrics.addPending(PendingQueue, opts.QueueCapacity)
	if reg != nil {
		reg.MustRegister(newQueueLengths(m))
	}
	return m
}

// SetTargets sets the Alertmanagers to send to, given by base URL. Queues
// of Alertmanagers that stay are kept. Alertmanagers that are new get the
// alerts held while none was known, and the undelivered alerts of those
// that are gone (an address replaced by another, as when a pod restarts).
// When none is new, the queue of one that is gone is dropped, counted as
// target_removed: the Alertmanagers that stay have their own copies.
func (m *Manager) SetTargets(bases []*url.URL) {
	// Retired senders are stopped once the lock is released, before
	// SetTargets returns, so a target that comes back in a later call
	// never meets the cleanup of its former self.
	var retired, added []*sender
	defer func() {
		for _, s := range retired {
			m.retire(s, added)
		}
	}()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	want := make(map[string]*url.URL, len(bases))
	for _, b := range bases {
		want[b.String()] = b
	}
	for name, s := range m.senders {
		if _, ok := want[name]; ok {
			continue
		}
		delete(m.senders, name)
		retired = append(retired, s)
	}
	for name, base := range want {
		if _, ok := m.senders[name]; ok {
			continue
		}
		s := m.newSender(name, base)
		m.senders[name] = s
		m.metrics.addTarget(name, m.opts().QueueCapacity)
		added = append(added, s)
	}
	if len(added) > 0 {
		if held := m.pending.q.drain(); len(held) > 0 {
			m.handOver(m.pending, held, added)
		}
	}
	for _, s := range added {
		ctx, cancel := context.WithCancel(m.ctx)
		s.cancel = cancel
		go s.run(ctx, m.drain)
		m.logger.Info("sending alerts to Alertmanager", "alertmanager", s.name)
	}
	m.metrics.targets.Set(float64(len(m.senders)))
}

func (m *Manager) opts() *Options { return m.optsp.Load() }

// SetOptions replaces the options, as a reload does. Queues keep their
// alerts; new bounds apply at the next push (a smaller one drops the
// oldest then, counted as queue_full), and the next request uses the new
// client, timeout and batch settings.
func (m *Manager) SetOptions(o Options) {
	o.withDefaults()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.optsp.Store(&o)
	for name, s := range m.senders {
		s.q.setLimits(o.QueueCapacity, int(o.QueueMaxBytes))
		m.metrics.queueCapacity.WithLabelValues(name).Set(float64(o.QueueCapacity))
	}
	m.pending.q.setLimits(o.QueueCapacity, int(o.QueueMaxBytes))
	m.metrics.queueCapacity.WithLabelValues(PendingQueue).Set(float64(o.QueueCapacity))
}

func (m *Manager) newSender(name string, base *url.URL) *sender {
	s := &sender{
		name:    name,
		q:       newQueue(m.opts().QueueCapacity),
		optsp:   &m.optsp,
		logger:  m.logger.With("alertmanager", name),
		metrics: m.metrics,
		stopped: make(chan struct{}),
	}
	if base != nil {
		s.url = AlertsURL(base).String()
	}
	s.q.maxBytes = int(m.opts().QueueMaxBytes)
	s.drops = burstLog{logger: s.logger, every: 10 * time.Second}
	s.refusals = ratelog.NewKeyed(time.Minute)
	return s
}

// handOver queues entries taken from the queue of from in every queue of
// to, then lets go of them. With no queue to go to, they are dropped,
// counted as target_removed. The caller holds m.mu.
func (m *Manager) handOver(from *sender, entries []*entry, to []*sender) {
	if len(to) == 0 {
		// Counted apart too: the series of from go with it.
		m.metrics.targetRemoved.Add(float64(len(entries)))
		from.drop(entries, DropTargetRemoved)
		return
	}
	for _, s := range to {
		if dropped := s.q.adopt(entries); len(dropped) > 0 {
			s.drop(dropped, DropQueueFull)
			s.drops.flush(m.opts().now())
		}
	}
	for _, e := range entries {
		e.done()
	}
	m.logger.Info("undelivered alerts handed over to new Alertmanagers", "from", from.name, "alerts", len(entries), "to", len(to))
}

// retire stops the sender of an Alertmanager that is no longer a target and
// hands what it had not delivered to the targets added in its place.
func (m *Manager) retire(s *sender, added []*sender) {
	s.cancel()
	<-s.stopped
	if left := s.q.drain(); len(left) > 0 {
		m.mu.RLock()
		switch {
		case m.closed:
			// Close has taken the queues it delivers from; treat
			// these as it treats its own leftovers.
			if !m.keep {
				s.drop(left, DropShutdown)
			}
		default:
			// Only those still targets: a later SetTargets
			// may have retired some meanwhile.
			live := slices.DeleteFunc(slices.Clone(added), func(a *sender) bool { return m.senders[a.name] != a })
			m.handOver(s, left, live)
		}
		m.mu.RUnlock()
	}
	s.drops.flush(s.opts().now().Add(time.Hour))
	m.metrics.removeTarget(s.name)
	m.logger.Info("stopped sending alerts to Alertmanager", "alertmanager", s.name)
}

// Targets returns the base URLs alerts go to, sorted.
func (m *Manager) Targets() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	names := make([]string, 0, len(m.senders))
	for n := range m.senders {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Send queues an alert for every Alertmanager and returns at once, with the
// number of queues it went to: zero when no Alertmanager is known yet, in
// which case the alert waits for the first. ack, when not nil, is held once
// per queue until that queue is done with the alert (see Ack).
func (m *Manager) Send(a *Alert, ack Ack) (int, error) {
	return m.SendAll([]*Alert{a}, ack)
}

// SendAll is Send for several alerts, such as those of one request: each
// queue takes them together, so they leave in the same batch when it has
// room. ack is held once per alert and queue.
func (m *Manager) SendAll(alerts []*Alert, ack Ack) (int, error) {
	fps := make([]model.Fingerprint, len(alerts))
	encs := make([][]byte, len(alerts))
	for i, a := range alerts {
		fps[i] = a.Labels.Fingerprint()
		encs[i] = a.encode()
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	if len(alerts) == 0 {
		return len(m.senders), nil
	}
	if len(m.senders) == 0 {
		m.enqueue(m.pending, alerts, fps, encs, ack)
		return 0, nil
	}
	for _, s := range m.senders {
		m.enqueue(s, alerts, fps, encs, ack)
	}
	return len(m.senders), nil
}

func (m *Manager) enqueue(s *sender, alerts []*Alert, fps []model.Fingerprint, encs [][]byte, ack Ack) {
	if ack != nil {
		ack.Add(len(alerts))
	}
	merged, dropped := s.q.push(alerts, fps, encs, ack)
	if merged > 0 {
		s.metrics.merged.WithLabelValues(s.name).Add(float64(merged))
	}
	if len(dropped) > 0 {
		s.drop(dropped, DropQueueFull)
		s.drops.flush(m.opts().now())
	}
}

// Ready reports whether every queue has room.
func (m *Manager) Ready() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return errors.New("shutting down")
	}
	for name, s := range m.senders {
		if s.q.full() {
			return errors.New("the queue of " + name + " is full")
		}
	}
	if m.pending.q.full() {
		return errors.New("no Alertmanager is known and the queue holding alerts for one is full")
	}
	return nil
}

// Close delivers what is queued until ctx ends, then stops every sender.
// It returns, per Alertmanager, the entries that could not be delivered;
// they are counted as dropped (reason shutdown) unless keep is true, in
// which case their acks are not called so durable storage keeps them.
func (m *Manager) Close(ctx context.Context, keep bool) (undelivered int) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return 0
	}
	m.closed, m.keep = true, keep
	senders := make([]*sender, 0, len(m.senders))
	for _, s := range m.senders {
		senders = append(senders, s)
	}
	m.mu.Unlock()

	// Alerts still held for want of an Alertmanager have none to go to.
	for _, e := range m.pending.q.drain() {
		undelivered++
		if !keep {
			m.pending.countDrop(e, DropShutdown)
		}
	}
	m.pending.drops.flush(m.opts().now().Add(time.Hour))

	close(m.drain)
	for _, s := range senders {
		select {
		case <-s.stopped:
		case <-ctx.Done():
		}
	}
	m.cancel()
	for _, s := range senders {
		<-s.stopped
		left := s.q.drain()
		for _, e := range left {
			undelivered++
			if !keep {
				s.countDrop(e, DropShutdown)
			}
		}
		s.drops.flush(s.opts().now().Add(time.Hour))
	}
	return undelivered
}
