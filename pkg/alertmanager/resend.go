package alertmanager

import (
	"time"

	"github.com/prometheus/common/model"
)

// DefaultResendDelay is how long an alert just delivered waits before it
// is sent again when nothing but its endsAt, annotations and merge count
// changed: a storm of one rule costs Alertmanager a request every few
// seconds instead of one per batch wait.
const DefaultResendDelay = 5 * time.Second

// Only small batches are remembered: a storm sends one alert, or a few,
// again and again; large batches are new alerts.
const (
	recentBatch = 64
	recentMax   = 4096
)

// recent remembers what the last small batches delivered, for the sender
// that owns it.
type recent struct {
	sent map[model.Fingerprint]sentAlert
}

type sentAlert struct {
	at     time.Time // when it was delivered
	endsAt time.Time // the endsAt Alertmanager holds
}

func (r *recent) record(batch []*entry, now time.Time, delay time.Duration) {
	if delay <= 0 || len(batch) > recentBatch {
		return
	}
	if r.sent == nil || len(r.sent) > recentMax {
		r.prune(now, delay)
	}
	for _, e := range batch {
		r.sent[e.fp] = sentAlert{at: now, endsAt: e.alert.EndsAt}
	}
}

func (r *recent) prune(now time.Time, delay time.Duration) {
	if r.sent == nil || len(r.sent) > 2*recentMax {
		r.sent = make(map[model.Fingerprint]sentAlert)
		return
	}
	for fp, s := range r.sent {
		if now.Sub(s.at) >= delay {
			delete(r.sent, fp)
		}
	}
}

// holdUntil says until when the waiting alerts may wait, since each was
// delivered a moment ago: the zero time when one of them is new or
// resolves one sent before, or when
// holding it would let Alertmanager's copy come near its endsAt.
func (r *recent) holdUntil(q *queue, now time.Time, delay time.Duration) time.Time {
	if delay <= 0 || len(r.sent) == 0 {
		return time.Time{}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	waiting := q.items[q.start:]
	if len(waiting) == 0 || len(waiting) > recentBatch {
		return time.Time{}
	}
	var until time.Time
	for _, e := range waiting {
		s, ok := r.sent[e.fp]
		if !ok || e.alert.Resolve {
			return time.Time{}
		}
		t := s.at.Add(delay)
		if late := s.endsAt.Add(-2 * delay); late.Before(t) {
			t = late
		}
		if !t.After(now) {
			return time.Time{}
		}
		if until.IsZero() || t.Before(until) {
			until = t
		}
	}
	return until
}
