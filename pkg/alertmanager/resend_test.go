package alertmanager

import (
	"fmt"
	"testing"
	"time"
)

// TestStormIsNotResentEveryBatch sends one alert 200 times over a second
// or more: Alertmanager gets it at first and then about once a resend
// delay, not once a batch wait.
func TestStormIsNotResentEveryBatch(t *testing.T) {
	am := newFakeAM(t, status(200))
	opts := testOptions()
	opts.BatchWait = 5 * time.Millisecond
	opts.ResendDelay = 400 * time.Millisecond
	m, _ := newTestManager(t, opts, nil, am.base())
	start := time.Now()
	for range 200 {
		if _, err := m.Send(testAlert("alertname", "Storm"), nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	// The last refresh is delivered once its delay is over.
	eventually(t, "the last refresh to be delivered", func() error {
		if n := m.senders[am.name()].q.len(); n != 0 {
			return fmt.Errorf("%d waiting", n)
		}
		return nil
	})
	reqs := len(am.seen())
	if most := 2 + int(elapsed/opts.ResendDelay); reqs > most {
		t.Fatalf("%d requests for a storm of %v; want at most %d, one per resend delay", reqs, elapsed, most)
	}
	if reqs < 2 {
		t.Fatalf("%d requests: the refreshes after the first delivery were never sent", reqs)
	}
}

// TestNewAlertEndsTheHold holds a refreshed alert for ten minutes, then
// queues a new one: both go out together at once.
func TestNewAlertEndsTheHold(t *testing.T) {
	am := newFakeAM(t, status(200))
	opts := testOptions()
	opts.ResendDelay = 10 * time.Minute
	m, _ := newTestManager(t, opts, nil, am.base())
	send := func(name string) {
		t.Helper()
		if _, err := m.Send(testAlert("alertname", name), nil); err != nil {
			t.Fatal(err)
		}
	}
	send("Storm")
	am.waitStored(t, "alertname", "Storm")
	send("Storm")
	time.Sleep(50 * time.Millisecond)
	if n := len(am.seen()); n != 1 {
		t.Fatalf("%d requests: the refresh was not held", n)
	}
	send("New")
	am.waitStored(t, "alertname", "Storm", "Storm", "New")
}

// TestHoldNeverNearsEndsAt does not hold an alert whose copy in
// Alertmanager would come near its endsAt meanwhile.
func TestHoldNeverNearsEndsAt(t *testing.T) {
	am := newFakeAM(t, status(200))
	opts := testOptions()
	opts.ResendDelay = time.Hour
	m, _ := newTestManager(t, opts, nil, am.base())
	a := testAlert("alertname", "ShortLived")
	a.EndsAt = time.Now().Add(time.Minute)
	for range 2 {
		if _, err := m.Send(a, nil); err != nil {
			t.Fatal(err)
		}
		am.waitStored(t, "alertname", "ShortLived")
		am.mu.Lock()
		am.stored = nil
		am.mu.Unlock()
	}
}

// TestResolveIsNotHeld sends a resolve right after the alert it ends: it
// goes out at once, not after the resend delay.
func TestResolveIsNotHeld(t *testing.T) {
	am := newFakeAM(t, status(200))
	opts := testOptions()
	opts.ResendDelay = 10 * time.Minute
	m, _ := newTestManager(t, opts, nil, am.base())
	if _, err := m.Send(testAlert("alertname", "Silent"), nil); err != nil {
		t.Fatal(err)
	}
	am.waitStored(t, "alertname", "Silent")
	r := testAlert("alertname", "Silent")
	r.EndsAt, r.Resolve = time.Now().Add(-time.Second), true
	if _, err := m.Send(r, nil); err != nil {
		t.Fatal(err)
	}
	am.waitStored(t, "alertname", "Silent", "Silent")
}
