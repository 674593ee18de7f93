package alertmanager

import (
	"net/http"
	"testing"
	"time"
)

// A resolving alert is delivered although its EndsAt has passed, and it
// ends a queued alert with the same labels instead of being extended by it.
func TestResolvingAlerts(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	gate := make(chan struct{})
	f := newFakeAM(t, gated(gate, status(http.StatusOK)))
	opts := testOptions()
	opts.Now = clock.Now
	m, reg := newTestManager(t, opts, nil, f.base())
	now := clock.Now().Truncate(time.Millisecond) // the wire's precision
	m.Send(testAlert("n", "blocker"), nil)
	f.waitRequests(t, 1)

	resolve := testAlert("n", "resolved")
	resolve.EndsAt, resolve.Resolve = now.Add(-time.Second), true
	plain := testAlert("n", "plain")
	plain.EndsAt = now.Add(-time.Second) // the same, not resolving: expired
	firing := testAlert("n", "flapped")
	firing.EndsAt = now.Add(time.Hour)
	ends := testAlert("n", "flapped")
	ends.EndsAt, ends.Resolve = now, true
	m.Send(resolve, nil)
	m.Send(plain, nil)
	m.Send(firing, nil)
	m.Send(ends, nil) // merges into firing, queued: takes its end
	close(gate)

	f.waitStored(t, "n", "blocker", "resolved", "flapped")
	waitValue(t, reg, 1, "alerts_dropped_total", f.name(), "reason", DropExpired)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.stored {
		switch a.Labels["n"] {
		case "resolved":
			if got := time.Time(a.EndsAt); !got.Equal(resolve.EndsAt) {
				t.Errorf("resolved alert endsAt %s, want %s", got, resolve.EndsAt)
			}
		case "flapped":
			if got := time.Time(a.EndsAt); !got.Equal(now) {
				t.Errorf("merged alert endsAt %s, want the resolving one's %s", got, now)
			}
		}
	}
}
