package alertmanager

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/ratelog"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/storage"
)

// maxConfigErrorTries is how often a batch is tried against an
// Alertmanager that answers as if the bridge were set up wrong (a
// redirect, 401, 403, 404) before it is dropped: a token being rotated or
// a route being deployed can fix itself, a typo cannot.
const maxConfigErrorTries = 3

// sender delivers the queue of one Alertmanager, with up to
// Options.MaxRequestsInFlight requests at once.
type sender struct {
	name string // the Alertmanager's URL, as shown in logs and metrics
	q    *queue
	// cur, with a spool, is where q is filled from.
	cur     *storage.Cursor
	url     string          // of the v2 alerts endpoint; "" for the pending queue
	opts    func() *Options // the Manager's, read at every use
	logger  *slog.Logger
	metrics *metrics
	drops   burstLog
	// refusals rate-limits the lines about alerts Alertmanager refused
	// or could not take, per reason.
	refusals *ratelog.Keyed
	stats    targetStats // last success and error, for the status page
	inflight atomic.Int32

	mu sync.Mutex // guards what the requests in flight share:
	// failures counts failed attempts in a row, for the backoff;
	// configFailures those that were configuration errors.
	failures       int
	configFailures int
	retryAt        time.Time // no request before it
	recent         recent

	cancel  context.CancelFunc
	stopped chan struct{}
}

// run sends until ctx ends, or until the queue is empty once drain is
// closed.
func (s *sender) run(ctx context.Context, drain <-chan struct{}) {
	defer close(s.stopped)
	var requests sync.WaitGroup
	defer requests.Wait()
	for {
		// A request cut short by ctx puts its batch back: without this
		// check the loop would post again, be cancelled again, and
		// never return.
		if ctx.Err() != nil {
			return
		}
		s.fill()
		draining := closed(drain)
		if drain != nil && draining {
			drain = nil // a closed channel must not be waited on again
		}
		if int(s.inflight.Load()) >= s.opts().MaxRequestsInFlight || !s.q.takeable() {
			if draining && s.inflight.Load() == 0 && s.q.len() == 0 && s.caughtUp() {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-drain:
			case <-s.q.wake:
			}
			continue
		}
		now := s.opts().now()
		s.mu.Lock()
		retryAt, failing := s.retryAt, s.failures > 0
		s.mu.Unlock()
		if retryAt.After(now) {
			// Backing off; reading on from the spool meanwhile lets a
			// storm coalesce, and the spool let go of what it merged.
			if !s.wait(ctx, nil, retryAt.Sub(now)) {
				return
			}
			continue
		}
		if !failing && !draining {
			// Alerts delivered a moment ago and only refreshed since
			// (a storm) wait; a new alert ends the wait.
			s.mu.Lock()
			until := s.recent.holdUntil(s.q, now, s.opts().ResendDelay)
			s.mu.Unlock()
			if !until.IsZero() {
				if !s.wait(ctx, drain, until.Sub(now)) {
					return
				}
				continue
			}
			if w := s.opts().BatchWait; w > 0 && s.q.waiting() < s.opts().BatchSize {
				// Linger so that a burst of events goes out in one
				// request, until the batch is full. Shutdown does not
				// wait for it.
				t := time.NewTimer(w)
			linger:
				for {
					select {
					case <-ctx.Done():
						t.Stop()
						return
					case <-drain:
						t.Stop()
						break linger
					case <-t.C:
						break linger
					case <-s.q.wake:
						s.fill()
						if s.q.waiting() >= s.opts().BatchSize {
							t.Stop()
							break linger
						}
					}
				}
				s.fill()
			}
		}
		batch, expired := s.q.take(s.opts().BatchSize, s.opts().now())
		s.drop(expired, DropExpired)
		if len(batch) == 0 {
			continue
		}
		s.inflight.Add(1)
		requests.Add(1)
		go func() {
			defer requests.Done()
			s.attempt(ctx, batch)
			s.drops.flush(s.opts().now())
			s.inflight.Add(-1)
			s.q.wakeUp()
		}()
	}
}

// wait sleeps for d, or until ctx ends, drain closes or the queue wakes.
// It says whether to go on.
func (s *sender) wait(ctx context.Context, drain <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-drain:
	case <-s.q.wake:
	case <-t.C:
	}
	return true
}

// fill reads the spool into the window while it has room.
func (s *sender) fill() {
	if s.cur == nil {
		return
	}
	now := s.opts().now()
	expired, merged := 0, 0
	s.cur.Fill(s.q.room, func(r storage.Record) {
		if r.Wire.Expired(now) {
			expired++
			return
		}
		e := newEntry(r.Wire)
		e.pos, e.durable = r.Pos, true
		if s.q.add(e) {
			merged++
		}
	})
	if expired > 0 {
		s.metrics.dropped.WithLabelValues(s.name, DropExpired).Add(float64(expired))
		s.drops.add(DropExpired, expired)
	}
	if merged > 0 {
		s.metrics.merged.WithLabelValues(s.name).Add(float64(merged))
	}
	if lost := s.cur.Lost(); lost > 0 {
		s.metrics.dropped.WithLabelValues(s.name, DropStorageFull).Add(float64(lost))
		s.drops.add(DropStorageFull, int(lost))
	}
}

// caughtUp says whether nothing waits in the spool for this sender.
func (s *sender) caughtUp() bool { return s.cur == nil || s.cur.Backlog() == 0 }

// attempt sends one batch and accounts for how it went.
func (s *sender) attempt(ctx context.Context, batch []*entry) {
	r := s.post(ctx, batch)
	switch r.outcome {
	case outcomeOK:
		s.mu.Lock()
		if s.failures > 0 {
			s.logger.Info("sending alerts works again", "failed_attempts", s.failures)
		}
		s.failures, s.configFailures = 0, 0
		s.recent.record(batch, s.opts().now(), s.opts().ResendDelay)
		s.mu.Unlock()
		s.delivered(batch)
	case outcomeConfig:
		s.mu.Lock()
		s.failures++
		s.configFailures++
		give := s.configFailures >= maxConfigErrorTries
		if give {
			s.configFailures = 0
		}
		s.backoffLocked(0)
		s.mu.Unlock()
		s.logConfigError(r, len(batch))
		if !give {
			s.requeue(batch)
			return
		}
		s.q.finish(batch, func(*entry) bool { return true })
		s.drop(batch, r.reason)
	case outcomeRejected:
		s.mu.Lock()
		s.failures, s.configFailures = 0, 0
		s.mu.Unlock()
		if len(batch) > 1 && (r.status == 400 || r.status == 422 || r.status == 413) {
			// A 400 can be a partial success: Alertmanager stores the
			// valid alerts of a batch and rejects the others. Find
			// the rejected ones alert by alert; re-posting the valid
			// ones only refreshes them, as Alertmanager keys alerts by
			// their labels. A 413 (a proxy's body limit) is split the
			// same way.
			s.logger.Debug("batch rejected, resending alert by alert", "status", r.status, "alerts", len(batch), "err", r.Error())
			if s.split(ctx, batch) {
				s.mu.Lock()
				s.failures++
				s.backoffLocked(0)
				s.mu.Unlock()
			}
			return
		}
		s.rejected(batch, r)
	case outcomeCancelled:
		s.requeue(batch)
	default:
		s.mu.Lock()
		s.failures++
		failures := s.failures
		wait := s.backoffLocked(r.retryAfter)
		s.mu.Unlock()
		s.requeue(batch)
		// Warn on the first failure and now and then during an outage.
		level := slog.LevelDebug
		if failures == 1 || failures%10 == 0 {
			level = slog.LevelWarn
		}
		s.logger.Log(ctx, level, "sending alerts failed, will retry", "alerts", len(batch), "attempt", failures, "retry_in", wait, "err", r.Error())
	}
}

// split posts the alerts of a rejected batch one by one. It stops at the
// first retryable failure, leaving the rest queued, and says so.
func (s *sender) split(ctx context.Context, batch []*entry) (retry bool) {
	results := make(map[*entry]bool, len(batch))
	for _, e := range batch {
		if ctx.Err() != nil || retry {
			break
		}
		if e.expired(s.opts().now()) {
			results[e] = true
			s.countDrop(e, DropExpired)
			continue
		}
		r := s.post(ctx, []*entry{e})
		switch r.outcome {
		case outcomeOK:
			results[e] = true
			s.metrics.sent.WithLabelValues(s.name).Inc()
			e.done()
		case outcomeRejected:
			results[e] = true
			s.logRejected([]*entry{e}, r)
			s.countDrop(e, DropRejected)
		case outcomeConfig:
			// Not the alert's fault: keep the rest for the next
			// attempt, which counts the tries.
			s.logConfigError(r, 1)
			retry = true
		case outcomeRetry:
			retry = true
		}
	}
	s.q.finish(batch, func(e *entry) bool { return results[e] })
	for _, e := range batch {
		if e.evicted && !results[e] {
			s.countDrop(e, DropQueueFull)
		}
	}
	return retry
}

func (s *sender) post(ctx context.Context, batch []*entry) response {
	encs := make([][]byte, len(batch))
	for i, e := range batch {
		encs[i] = e.encoded()
	}
	body := alert.JoinBatch(encs)
	start := time.Now()
	o := s.opts()
	c := client{url: s.url, http: o.HTTPClient, timeout: o.Timeout, userAgent: o.UserAgent}
	r := c.post(ctx, body, o.now())
	s.metrics.latency.WithLabelValues(s.name).Observe(time.Since(start).Seconds())
	s.metrics.requests.WithLabelValues(s.name, r.outcome.String()).Inc()
	s.stats.record(r, s.opts().now())
	return r
}

func (s *sender) delivered(batch []*entry) {
	s.q.finish(batch, func(*entry) bool { return true })
	for _, e := range batch {
		e.done()
	}
	s.metrics.sent.WithLabelValues(s.name).Add(float64(len(batch)))
}

func (s *sender) rejected(batch []*entry, r response) {
	s.q.finish(batch, func(*entry) bool { return true })
	s.logRejected(batch, r)
	for _, e := range batch {
		s.countDrop(e, DropRejected)
	}
}

// logRejected logs refused alerts, at most one line per status code and
// interval, with the counts held back since the last line.
func (s *sender) logRejected(batch []*entry, r response) {
	ok, lines, held := s.refusals.Allow(strconv.Itoa(r.status), s.opts().now(), len(batch))
	if !ok {
		return
	}
	names := make([]string, 0, min(len(batch), 5))
	for _, e := range batch[:min(len(batch), 5)] {
		names = append(names, string(e.w.JSON[:e.w.LabelsEnd()]))
	}
	s.logger.Error("Alertmanager rejected alerts; they are dropped", "status", r.status, "alerts", len(batch), "labels", names, "err", r.Error(),
		"rejected_since_last_line", held, "lines_suppressed", lines)
}

// logConfigError logs, once per reason and interval, an answer that says
// the bridge is set up wrong for this Alertmanager.
func (s *sender) logConfigError(r response, alerts int) {
	ok, lines, held := s.refusals.Allow(r.reason, s.opts().now(), alerts)
	if !ok {
		return
	}
	args := []any{"status", r.status, "reason", r.reason, "alerts", alerts, "err", r.Error(),
		"max_tries", maxConfigErrorTries, "alerts_since_last_line", held, "lines_suppressed", lines}
	msg := "Alertmanager answers as if the bridge were set up wrong; the alerts are not delivered and are dropped after a few tries"
	if r.reason == DropRedirect {
		// Following it would turn the POST into a GET.
		msg = "Alertmanager redirects with a method change (301, 302, 303); point alertmanager.urls at the target itself; the alerts are dropped after a few tries"
		args = append(args, "location", r.location)
	}
	s.logger.Error(msg, args...)
}

// requeue puts a batch back after a failed attempt. Entries pushed out of
// the full queue meanwhile are dropped now that they were not delivered.
func (s *sender) requeue(batch []*entry) {
	s.q.finish(batch, func(*entry) bool { return false })
	var evicted []*entry
	for _, e := range batch {
		if e.evicted {
			evicted = append(evicted, e)
		}
	}
	s.drop(evicted, DropQueueFull)
}

func (s *sender) drop(entries []*entry, reason string) {
	for _, e := range entries {
		s.countDrop(e, reason)
	}
}

func (s *sender) countDrop(e *entry, reason string) {
	s.metrics.dropped.WithLabelValues(s.name, reason).Inc()
	s.drops.add(reason, 1)
	e.done()
}

// backoffLocked sets when the next request may go, after a failure: at
// least retryAfter (up to MaxRetryAfter), else exponential with jitter
// between MinBackoff and MaxBackoff. It returns the wait.
func (s *sender) backoffLocked(retryAfter time.Duration) time.Duration {
	o := s.opts()
	d := o.MinBackoff
	for i := 1; i < s.failures && d < o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, o.MaxBackoff)
	// Half fixed, half random: spreads the retries of many bridges
	// without ever retrying at once.
	wait := d/2 + rand.N(d/2+1)
	if retryAfter > wait {
		wait = min(retryAfter, o.MaxRetryAfter)
	}
	s.retryAt = o.now().Add(wait)
	return wait
}

// burstLog logs dropped alerts at most once per interval, with the counts
// by reason since the last line, so a burst of drops makes one line, not
// thousands. add only counts; flush logs when the interval has passed.
type burstLog struct {
	mu      sync.Mutex
	logger  *slog.Logger
	every   time.Duration
	last    time.Time
	pending map[string]int
}

func (b *burstLog) add(reason string, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == nil {
		b.pending = map[string]int{}
	}
	b.pending[reason] += n
}

func (b *burstLog) flush(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pending) == 0 || now.Sub(b.last) < b.every {
		return
	}
	args := make([]any, 0, 2*len(b.pending))
	for r, n := range b.pending {
		args = append(args, r, n)
	}
	b.logger.Warn("alerts dropped", args...)
	clear(b.pending)
	b.last = now
}

func closed(c <-chan struct{}) bool {
	if c == nil {
		return true
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}
