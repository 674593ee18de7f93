package alertmanager

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/ratelog"
)

// maxConfigErrorTries is how often a batch is tried against an
// Alertmanager that answers as if the bridge were set up wrong (a
// redirect, 401, 403, 404) before it is dropped: a token being rotated or
// a route being deployed can fix itself, a typo cannot.
const maxConfigErrorTries = 3

// sender delivers the queue of one Alertmanager, one batch at a time.
type sender struct {
	name    string // the Alertmanager's URL, as shown in logs and metrics
	q       *queue
	url     string // of the v2 alerts endpoint; "" for the pending queue
	optsp   *atomic.Pointer[Options]
	logger  *slog.Logger
	metrics *metrics
	drops   burstLog
	// refusals rate-limits the lines about alerts Alertmanager refused
	// or could not take, per reason.
	refusals *ratelog.Keyed
	// failures counts failed attempts in a row, for the backoff;
	// configFailures those that were configuration errors.
	failures       int
	configFailures int
	recent         recent
	stats          targetStats // last success and error, for the status page
	cancel         context.CancelFunc
	stopped        chan struct{}
}

func (s *sender) opts() *Options { return s.optsp.Load() }

// run sends until ctx ends, or until the queue is empty once drain is
// closed.
func (s *sender) run(ctx context.Context, drain <-chan struct{}) {
	defer close(s.stopped)
	for {
		// A request cut short by ctx puts its batch back and asks for
		// no wait: without this check the loop would post again, be
		// cancelled again, and never return.
		if ctx.Err() != nil {
			return
		}
		if s.q.len() == 0 {
			select {
			case <-ctx.Done():
				return
			case <-drain:
				if s.q.len() == 0 {
					return
				}
			case <-s.q.wake:
			}
			continue
		}
		if s.failures == 0 && !closed(drain) {
			// Alerts delivered a moment ago and only refreshed since
			// (a storm) wait; a new alert ends the wait.
			now := s.opts().now()
			if until := s.recent.holdUntil(s.q, now, s.opts().ResendDelay); !until.IsZero() {
				t := time.NewTimer(until.Sub(now))
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-drain:
				case <-s.q.wake:
				case <-t.C:
				}
				t.Stop()
				continue
			}
		}
		if s.opts().BatchWait > 0 && s.q.len() < s.opts().BatchSize && s.failures == 0 {
			// Linger so that a burst of events goes out in one request.
			// Shutdown does not wait for it.
			t := time.NewTimer(s.opts().BatchWait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-drain:
				t.Stop()
			case <-t.C:
			}
		}
		wait := s.attempt(ctx)
		s.drops.flush(s.opts().now())
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// attempt sends one batch and says how long to wait before the next try.
func (s *sender) attempt(ctx context.Context) time.Duration {
	now := s.opts().now()
	batch, expired := s.q.take(s.opts().BatchSize, now)
	s.drop(expired, DropExpired)
	if len(batch) == 0 {
		return 0
	}
	r := s.post(ctx, batch)
	switch r.outcome {
	case outcomeOK:
		if s.failures > 0 {
			s.logger.Info("sending alerts works again", "failed_attempts", s.failures)
		}
		s.failures, s.configFailures = 0, 0
		s.delivered(batch)
		return 0
	case outcomeConfig:
		s.failures++
		s.configFailures++
		s.logConfigError(r, len(batch))
		if s.configFailures < maxConfigErrorTries {
			s.requeue(batch)
			return s.backoff()
		}
		s.configFailures = 0
		s.q.finish(batch, func(*entry) bool { return true })
		s.drop(batch, r.reason)
		return s.backoff()
	case outcomeRejected:
		s.failures, s.configFailures = 0, 0
		if len(batch) > 1 && (r.status == 400 || r.status == 422 || r.status == 413) {
			// A 400 can be a partial success: Alertmanager stores the
			// valid alerts of a batch and rejects the others. Find
			// the rejected ones alert by alert; re-posting the valid
			// ones only refreshes them, as Alertmanager keys alerts by
			// their labels. A 413 (a proxy's body limit) is split the
			// same way.
			s.logger.Debug("batch rejected, resending alert by alert", "status", r.status, "alerts", len(batch), "err", r.Error())
			if s.split(ctx, batch) {
				s.failures++
				return s.backoff()
			}
			return 0
		}
		s.rejected(batch, r)
		return 0
	case outcomeCancelled:
		s.requeue(batch)
		return 0
	default:
		s.failures++
		s.requeue(batch)
		wait := s.backoff()
		if r.retryAfter > wait {
			wait = min(r.retryAfter, s.opts().MaxRetryAfter)
		}
		// Warn on the first failure and now and then during an outage.
		level := slog.LevelDebug
		if s.failures == 1 || s.failures%10 == 0 {
			level = slog.LevelWarn
		}
		s.logger.Log(ctx, level, "sending alerts failed, will retry", "alerts", len(batch), "attempt", s.failures, "retry_in", wait, "err", r.Error())
		return wait
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
		if e.alert.expired(s.opts().now()) {
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
	body := joinBatch(encs)
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
	s.recent.record(batch, s.opts().now(), s.opts().ResendDelay)
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
		names = append(names, e.alert.Labels.String())
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

// backoff is exponential with full jitter between MinBackoff and MaxBackoff.
func (s *sender) backoff() time.Duration {
	d := s.opts().MinBackoff
	for i := 1; i < s.failures && d < s.opts().MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.opts().MaxBackoff)
	// Half fixed, half random: spreads the retries of many bridges
	// without ever retrying at once.
	return d/2 + rand.N(d/2+1)
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
	b.flushLocked(now)
}

func (b *burstLog) flushLocked(now time.Time) {
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
	select {
	case <-c:
		return true
	default:
		return false
	}
}
