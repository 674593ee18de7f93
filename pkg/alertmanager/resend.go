package alertmanager

import (
	"time"
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
	sent map[uint64]sentAlert
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
		r.sent[e.w.Fingerprint()] = sentAlert{at: now, endsAt: e.endsAt}
	}
}

func (r *recent) prune(now time.Time, delay time.Duration) {
	if r.sent == nil || len(r.sent) > 2*recentMax {
		r.sent = make(map[uint64]sentAlert)
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
	var until time.Time
	waiting := 0
	for _, e := range q.items[q.start:] {
		if e.inflight {
			continue
		}
		if waiting++; waiting > recentBatch {
			return time.Time{}
		}
		s, ok := r.sent[e.w.Fingerprint()]
		if !ok || e.w.Resolve {
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
