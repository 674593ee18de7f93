package alertmanager

import (
	"sync"
	"time"
)

// TargetResult is how the requests to one Alertmanager went last: what
// the status page shows beside the counters of /metrics.
type TargetResult struct {
	LastSuccess   time.Time
	LastError     string // the last failed request's error; kept after a success
	LastErrorTime time.Time
}

// targetStats records the last success and the last error of a sender.
type targetStats struct {
	mu   sync.Mutex
	last TargetResult
}

func (t *targetStats) record(r response, at time.Time) {
	if r.outcome == outcomeCancelled {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.outcome == outcomeOK {
		t.last.LastSuccess = at
		return
	}
	t.last.LastError, t.last.LastErrorTime = r.Error(), at
}

func (t *targetStats) get() TargetResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// TargetResults returns the last results of every current Alertmanager,
// by the name its metrics carry.
func (m *Manager) TargetResults() map[string]TargetResult {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make(map[string]TargetResult, len(m.senders))
	for name, s := range m.senders {
		out[name] = s.stats.get()
	}
	return out
}
