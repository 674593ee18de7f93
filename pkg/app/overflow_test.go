package app

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestQueueOverflow: capacity 100, Alertmanager down, 1,000 events: exactly
// 900 dropped and counted, the newest 100 delivered once it is back.
func TestQueueOverflow(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	inner := newFakeAM(t)
	var mu sync.Mutex
	failed := 0
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			mu.Lock()
			failed++
			mu.Unlock()
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		inner.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	a := startApp(t, "--alertmanager.url="+front.URL, "--alertmanager.queue-capacity=100",
		"--alertmanager.min-backoff=10ms", "--alertmanager.max-backoff=50ms")
	for req := range 10 {
		var evs []string
		for i := range 100 {
			n := req*100 + i
			evs = append(evs, strings.Replace(ev(fmt.Sprintf("Overflow %04d", n), "Warning"), `"app-0"`, fmt.Sprintf(`"pod-%04d"`, n), 1))
		}
		if r := post(t, a, http.MethodPost, "application/json", "", []byte("["+strings.Join(evs, ",")+"]")); r.code != http.StatusAccepted {
			t.Fatalf("request %d: %d %s", req, r.code, r.body)
		}
	}
	waitFor(t, "900 drops", func() bool {
		return metricValue(t, a, "falco_am_bridge_alertmanager_alerts_dropped_total") == 900
	})
	if got := metricValue(t, a, "falco_am_bridge_alertmanager_queue_length"); got != 100 {
		t.Errorf("queue length %v, want 100", got)
	}
	if resp, err := http.Get("http://" + a.Addr() + "/-/ready"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readiness with a full queue: %v %v", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
	down.Store(false)
	waitFor(t, "the newest 100", func() bool { return len(inner.alerts()) == 100 })
	rules := inner.rules()
	for i, r := range rules {
		if want := fmt.Sprintf("Overflow %04d", 900+i); r != want {
			t.Fatalf("alert %d delivered is %q, want %q: the oldest must go first", i, r, want)
		}
	}
	// Counted once the bridge has read Alertmanager's answer, which
	// comes after the fake stored the alerts.
	waitFor(t, "100 counted as sent", func() bool {
		return metricValue(t, a, "falco_am_bridge_alertmanager_alerts_sent_total") == 100
	})
	if got := metricValue(t, a, "falco_am_bridge_alertmanager_alerts_dropped_total"); got != 900 {
		t.Errorf("%v dropped after recovery, want exactly 900", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if failed == 0 {
		t.Error("Alertmanager was never tried while down")
	}
}

// TestQueueBoundedInBytes: while Alertmanager is down, alerts near the
// annotation cap fill a queue bounded to 1 MiB long before its capacity in
// alerts; the oldest are dropped and counted, and the bytes stay bounded.
func TestQueueBoundedInBytes(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	a := startApp(t, "--alertmanager.url="+down.URL, "--alertmanager.queue-max-bytes=1MiB", "--alertmanager.drain-timeout=0s")
	long := strings.Repeat("x", 4000)
	for req := range 10 {
		var evs []string
		for i := range 100 {
			n := req*100 + i
			e := strings.Replace(ev("Big", "Warning"), `"app-0"`, fmt.Sprintf(`"pod-%04d"`, n), 1)
			evs = append(evs, strings.Replace(e, `"sh -c id"`, `"sh -c `+long+`"`, 1))
		}
		if r := post(t, a, http.MethodPost, "application/json", "", []byte("["+strings.Join(evs, ",")+"]")); r.code != http.StatusAccepted {
			t.Fatalf("request %d: %d %s", req, r.code, r.body)
		}
	}
	held := metricValue(t, a, "falco_am_bridge_alertmanager_queue_length")
	dropped := metricValue(t, a, "falco_am_bridge_alertmanager_alerts_dropped_total")
	if b := metricValue(t, a, "falco_am_bridge_alertmanager_queue_bytes"); b > 1<<20 {
		t.Errorf("queue_bytes = %v, over 1 MiB", b)
	}
	if held+dropped != 1000 || held > 200 || held == 0 {
		t.Errorf("%v held and %v dropped of 1,000 alerts of about 8 KB in 1 MiB", held, dropped)
	}
	// At its byte bound, far below its capacity in alerts, the queue is
	// full, and readiness says so.
	resp, err := http.Get("http://" + a.Addr() + "/-/ready")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "queue of "+down.URL+" is full") {
		t.Errorf("/-/ready with the queue at its byte bound: %d %s", resp.StatusCode, body)
	}
}
