// Package alertmanager delivers alerts to Alertmanager's v2 API: a queue
// and a sender per Alertmanager (or a cursor over the durable spool),
// batching, retries with backoff, and DNS discovery of a cluster's members.
package alertmanager

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/defaults"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/ratelog"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/storage"
)

// Options tune delivery. Zero values take the defaults below, but for
// BatchWait: zero sends as soon as an alert is queued.
type Options struct {
	// QueueCapacity and QueueMaxBytes bound each Alertmanager's queue,
	// or with a spool its window in memory, in alerts and in bytes; the
	// window holds a batch per request in flight and one more at most.
	QueueCapacity int
	QueueMaxBytes int64 // 0: DefaultQueueMaxBytes
	BatchSize     int   // alerts per POST at most
	// MaxRequestsInFlight is how many POSTs go to one Alertmanager at
	// once; two versions of one alert are never in flight together.
	MaxRequestsInFlight int
	BatchWait           time.Duration // how long a first alert waits for others to join its batch
	Timeout             time.Duration // per POST
	MinBackoff          time.Duration // first retry delay
	MaxBackoff          time.Duration // longest retry delay
	MaxRetryAfter       time.Duration // longest Retry-After honoured
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
	DefaultQueueMaxBytes       = 32 << 20
	DefaultBatchSize           = 2048
	DefaultMaxRequestsInFlight = 2
	DefaultTimeout             = 10 * time.Second
	DefaultMinBackoff          = 500 * time.Millisecond
	DefaultMaxBackoff          = 10 * time.Second
	DefaultMaxRetryAfter       = 5 * time.Minute
)

func (o *Options) withDefaults() {
	defer func() { o.HTTPClient = postOnly(o.HTTPClient) }()
	defaults.Set(&o.QueueCapacity, DefaultQueueCapacity)
	defaults.Set(&o.QueueMaxBytes, DefaultQueueMaxBytes)
	defaults.Set(&o.BatchSize, DefaultBatchSize)
	defaults.Set(&o.MaxRequestsInFlight, DefaultMaxRequestsInFlight)
	defaults.Set(&o.Timeout, DefaultTimeout)
	defaults.Set(&o.MinBackoff, DefaultMinBackoff)
	defaults.Set(&o.MaxBackoff, DefaultMaxBackoff)
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	defaults.Set(&o.MaxRetryAfter, DefaultMaxRetryAfter)
	if o.ResendDelay == 0 {
		o.ResendDelay = DefaultResendDelay
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	defaults.Set(&o.UserAgent, "falco-am-bridge")
	if o.Now == nil {
		o.Now = time.Now
	}
}

func (o *Options) now() time.Time { return o.Now() }

// Manager fans alerts out to every Alertmanager, each with its own queue
// and sender, so a slow or dead one never holds up the others. Without a
// spool each queue holds its alerts in memory; with one, the spool is the
// queue, and each Alertmanager reads it through a cursor of its own into a
// window in memory.
type Manager struct {
	// options returns the options in effect: those given to
	// NewManager, or, after Follow, its owner's.
	options func() *Options
	logger  *slog.Logger
	metrics *metrics
	spool   *storage.Store // nil: memory only

	ctx    context.Context
	cancel context.CancelFunc
	drain  chan struct{}

	mu      sync.RWMutex
	senders map[string]*sender // by Alertmanager base URL
	// pending holds alerts while no Alertmanager is known, as when a DNS
	// name has not resolved yet; the first to appear get them. In memory
	// mode it is a queue without a sender running; with a spool, a
	// cursor that does not read, marking where they will start.
	pending    *sender
	pendingCur *storage.Cursor
	// claimed says whether the marks a previous run saved for
	// Alertmanagers were handed out, at the first SetTargets.
	claimed bool
	closed  bool
	keep    bool // Close's keep
}

// PendingQueue names, in metrics and logs, the queue that holds alerts
// while no Alertmanager is known.
const PendingQueue = "pending"

// ErrClosed is returned by Send and SendAll once Close was called.
var ErrClosed = errors.New("alertmanager manager closed")

// NewManager returns a Manager with no Alertmanagers; SetTargets adds them.
// With spool, the spool is the queue (see Manager).
func NewManager(opts Options, spool *storage.Store, logger *slog.Logger, reg prometheus.Registerer) (*Manager, error) {
	opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		logger:  logger,
		metrics: newMetrics(reg),
		spool:   spool,
		ctx:     ctx,
		cancel:  cancel,
		drain:   make(chan struct{}),
		senders: map[string]*sender{},
	}
	m.options = func() *Options { return &opts }
	m.pending = m.newSender(PendingQueue, nil)
	m.metrics.addPending(PendingQueue, m.capacity(&opts))
	if spool != nil {
		// Until an Alertmanager is known, what the spool holds waits
		// for the first: from the oldest mark a previous run left, or
		// from the oldest record.
		from := spool.Tail()
		for _, p := range spool.Saved() {
			if p.Before(from) || from == spool.Tail() {
				from = p
			}
		}
		cur, err := spool.Cursor(PendingQueue, &from)
		if err != nil {
			cancel()
			return nil, err
		}
		m.pendingCur = cur
	}
	if reg != nil {
		reg.MustRegister(newQueueLengths(m))
	}
	return m, nil
}

// SetTargets sets the Alertmanagers to send to, given by base URL. Queues
// of Alertmanagers that stay are kept. Alertmanagers that are new get the
// alerts held while none was known, and the undelivered alerts of those
// that are gone (an address replaced by another, as when a pod restarts).
// When none is new, the queue of one that is gone is dropped, counted as
// target_removed: the Alertmanagers that stay have their own copies. With
// a spool, an Alertmanager known to a previous run goes on from its mark,
// and a new one starts where the ones it replaces were.
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
	var from *storage.Position
	if m.spool != nil {
		from = m.inheritedMark(retired, len(want) > len(m.senders))
	}
	for name, base := range want {
		if _, ok := m.senders[name]; ok {
			continue
		}
		s := m.newSender(name, base)
		if m.spool != nil {
			cur, err := m.spool.Cursor(name, from)
			if err != nil {
				m.logger.Error("durable queue: no cursor for Alertmanager; not sending to it", "alertmanager", name, "err", err)
				continue
			}
			s.cur = cur
			cur.SetMark(s.q.watermark)
		}
		m.senders[name] = s
		m.metrics.addTarget(name, m.capacity(m.opts()))
		added = append(added, s)
	}
	if m.spool != nil && !m.claimed && len(added) > 0 {
		m.claimed = true
		var unclaimed []string
		for name := range m.spool.Saved() {
			unclaimed = append(unclaimed, name)
		}
		m.spool.Forget(unclaimed...)
	}
	if len(added) > 0 {
		if m.spool != nil {
			if m.pendingCur != nil {
				m.pendingCur.Close()
				m.pendingCur = nil
			}
		} else if held := m.pending.q.drain(); len(held) > 0 {
			m.handOver(m.pending, held, added)
		}
	}
	if m.spool != nil && len(m.senders) == 0 && m.pendingCur == nil {
		head := m.spool.Head()
		if from == nil {
			from = &head
		}
		if cur, err := m.spool.Cursor(PendingQueue, from); err == nil {
			m.pendingCur = cur
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

// inheritedMark is where a new Alertmanager's cursor starts when a
// previous run left none for it: the lowest mark of those it replaces
// (retired now, the pending cursor, and at the first call the marks a
// previous run saved for Alertmanagers not among the targets). Nil means
// the head: a new Alertmanager beside those that stay gets new alerts.
// The caller forgets the saved marks not claimed once the new cursors
// are open.
func (m *Manager) inheritedMark(retired []*sender, adding bool) *storage.Position {
	var low *storage.Position
	note := func(p storage.Position) {
		if low == nil || p.Before(*low) {
			low = &p
		}
	}
	for _, s := range retired {
		note(s.cur.Mark())
	}
	if m.pendingCur != nil {
		note(m.pendingCur.Mark())
	}
	if !m.claimed && adding {
		for _, p := range m.spool.Saved() {
			note(p)
		}
	}
	return low
}

func (m *Manager) opts() *Options { return m.options() }

// Complete returns o with the defaults of its unset fields filled in, as
// the Manager uses it: what a func given to Follow returns.
func (o Options) Complete() *Options {
	o.withDefaults()
	return &o
}

// Follow makes the Manager read its options from live at every use,
// instead of those given to NewManager: so that its owner publishes new
// options together with the rest of its state, in one swap, and then
// calls Apply. live returns Complete options. Follow is called before
// SetTargets.
func (m *Manager) Follow(live func() *Options) {
	m.options = live
	m.Apply()
}

// Apply puts the bounds of the options in effect on every queue, after
// the options that Follow reads have changed. Queues keep their alerts;
// new bounds apply at the next push (a smaller one drops the oldest then,
// counted as queue_full, in memory mode), and the next request uses the
// new client, timeout and batch settings.
func (m *Manager) Apply() {
	o := *m.opts()
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, s := range m.senders {
		s.q.setLimits(m.capacity(&o), int(o.QueueMaxBytes))
		s.q.wakeUp()
		m.metrics.queueCapacity.WithLabelValues(name).Set(float64(m.capacity(&o)))
	}
	m.pending.q.setLimits(m.capacity(&o), int(o.QueueMaxBytes))
	m.metrics.queueCapacity.WithLabelValues(PendingQueue).Set(float64(m.capacity(&o)))
}

// capacity is how many alerts a queue holds. With a spool the queue is
// only the window of the next alerts to send, read ahead from disk: a
// batch for every request in flight and one more ready keep delivery
// going, and whatever more waits costs disk, not memory.
func (m *Manager) capacity(o *Options) int {
	if m.spool == nil {
		return o.QueueCapacity
	}
	return min(o.QueueCapacity, (o.MaxRequestsInFlight+1)*o.BatchSize)
}

func (m *Manager) newSender(name string, base *url.URL) *sender {
	s := &sender{
		name:    name,
		q:       newQueue(m.capacity(m.opts())),
		opts:    m.opts,
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
// counted as target_removed. The caller holds m.mu. Memory mode only: with
// a spool, new cursors start where the old ones were instead.
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
	left := s.q.drain()
	if s.cur != nil {
		// The cursors added in its place started from its mark.
		if len(added) == 0 {
			n := len(left) + int(s.cur.Backlog())
			m.metrics.targetRemoved.Add(float64(n))
			if n > 0 {
				m.logger.Info("Alertmanager removed; the others have their own copies of what it had not received", "alertmanager", s.name, "alerts", n)
			}
		}
		s.cur.Close()
	} else if len(left) > 0 {
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

// Send queues an alert for every Alertmanager (see SendAll). a must have
// passed Check.
func (m *Manager) Send(a *alert.Alert, ack Ack) (int, error) {
	return m.SendAll([]*alert.Wire{alert.Encode(a)}, ack)
}

// SendAlerts is SendAll for alerts not encoded yet, such as the silent
// sensors' alerts; each must have passed Check.
func (m *Manager) SendAlerts(alerts []*alert.Alert) (int, error) {
	wires := make([]*alert.Wire, len(alerts))
	for i, a := range alerts {
		wires[i] = alert.Encode(a)
	}
	return m.SendAll(wires, nil)
}

// SendAll queues alerts for every Alertmanager and returns at once, with
// the number of Alertmanagers they go to: zero when none is known yet, in
// which case they wait for the first. Each queue takes them together, so
// they leave in the same batch when it has room.
//
// With a spool, the alerts are safe once SendAll returns nil: they are
// written to it (see storage.Store.Append for its errors), and ack is not
// held. In memory mode, ack, when not nil, is held once per alert and
// queue until that queue is done with the alert (see Ack).
func (m *Manager) SendAll(wires []*alert.Wire, ack Ack) (int, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	if len(wires) == 0 {
		return len(m.senders), nil
	}
	if m.spool != nil {
		if err := m.spool.Append(wires); err != nil {
			return 0, err
		}
		for _, s := range m.senders {
			s.q.wakeUp()
		}
		return len(m.senders), nil
	}
	if len(m.senders) == 0 {
		m.enqueue(m.pending, wires, ack)
		return 0, nil
	}
	for _, s := range m.senders {
		m.enqueue(s, wires, ack)
	}
	return len(m.senders), nil
}

func (m *Manager) enqueue(s *sender, wires []*alert.Wire, ack Ack) {
	if ack != nil {
		ack.Add(len(wires))
	}
	entries := make([]*entry, len(wires))
	for i, w := range wires {
		entries[i] = newEntry(w)
		if ack != nil {
			entries[i].acks = []Ack{ack}
		}
	}
	merged, dropped := s.q.push(entries)
	if merged > 0 {
		s.metrics.merged.WithLabelValues(s.name).Add(float64(merged))
	}
	if len(dropped) > 0 {
		s.drop(dropped, DropQueueFull)
		s.drops.flush(m.opts().now())
	}
}

// Ready reports whether new alerts can be taken without pushing others
// out: in memory mode every queue has room; with a spool, its last write
// worked.
func (m *Manager) Ready() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return errors.New("shutting down")
	}
	if m.spool != nil {
		if m.spool.Failing() {
			return errors.New("the durable queue cannot be written (see the log)")
		}
		return nil
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
// It returns the number of alerts that could not be delivered, summed over
// the Alertmanagers; they are counted as dropped (reason shutdown) unless
// keep is true, in which case their acks are not called. With a spool
// they stay in it, and the cursors' marks are left as they are for the
// spool to save.
func (m *Manager) Close(ctx context.Context, keep bool) (undelivered int) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return 0
	}
	m.closed, m.keep = true, keep || m.spool != nil
	keep = m.keep
	senders := make([]*sender, 0, len(m.senders))
	for _, s := range m.senders {
		senders = append(senders, s)
	}
	m.mu.Unlock()

	// Alerts still held for want of an Alertmanager have none to go to.
	if m.pendingCur != nil {
		undelivered += int(m.pendingCur.Backlog())
	}
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
		if s.cur != nil {
			// The window stays: the cursor's mark counts it.
			undelivered += s.q.len() + int(s.cur.Backlog())
			continue
		}
		for _, e := range s.q.drain() {
			undelivered++
			if !keep {
				s.countDrop(e, DropShutdown)
			}
		}
		s.drops.flush(s.opts().now().Add(time.Hour))
	}
	return undelivered
}
