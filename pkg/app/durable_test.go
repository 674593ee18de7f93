package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/storage"
)

// TestUnstorableEventStaysAlone: in durable mode, one event whose time
// decodes but cannot be stored (a gRPC timestamp before year 0) is refused
// on its own; the 50 valid events beside it are written to disk, not
// queued in memory only, and only they reach Alertmanager.
func TestUnstorableEventStaysAlone(t *testing.T) {
	am := newFakeAM(t)
	a := startApp(t, "--alertmanager.url="+am.URL, "--storage.path="+t.TempDir())
	var evs []string
	for i := range 50 {
		evs = append(evs, strings.Replace(ev("Valid neighbour", "Critical"), `"app-0"`, fmt.Sprintf(`"pod-%02d"`, i), 1))
	}
	odd := strings.Replace(ev("Odd time", "Critical"), `"time":"2026-01-02T12:00:00.000000000Z"`, `"time":{"seconds":-99999999999,"nanos":0}`, 1)
	evs = append(evs[:25], append([]string{odd}, evs[25:]...)...)
	r := post(t, a, http.MethodPost, "application/json", "", []byte("["+strings.Join(evs, ",")+"]"))
	if r.code != http.StatusBadRequest {
		t.Fatalf("answer %d %s, want 400 naming the odd event", r.code, r.body)
	}
	var ans struct {
		Alerts   int `json:"alerts"`
		Rejected int `json:"rejected"`
		Errors   []struct {
			Index int    `json:"index"`
			Field string `json:"field"`
		} `json:"errors"`
	}
	if err := json.Unmarshal([]byte(r.body), &ans); err != nil {
		t.Fatal(err)
	}
	if ans.Alerts != 50 || ans.Rejected != 1 || len(ans.Errors) != 1 || ans.Errors[0].Index != 25 || ans.Errors[0].Field != "time" {
		t.Fatalf("answer %s: want 50 alerts, event 25 rejected on its time", r.body)
	}
	if got := metricValue(t, a, "falco_am_bridge_storage_fallback_alerts_total"); got != 0 {
		t.Errorf("storage_fallback_alerts_total = %v: the valid events were made memory-only", got)
	}
	if got := metricValue(t, a, "falco_am_bridge_storage_records_written_total"); got != 50 {
		t.Errorf("storage_records_written_total = %v, want 50", got)
	}
	waitFor(t, "50 alerts delivered", func() bool { return len(am.alerts()) == 50 })
	for _, al := range am.alerts() {
		if al.Labels["falco_rule"] != "Valid neighbour" {
			t.Errorf("delivered %v", al.Labels)
		}
	}
}

// dirBytes is the size of the files in dir.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// TestStormDoesNotGrowTheSpool: while Alertmanager is down, a storm of
// one alert (6,000 events, about 40 MB of records) coalesces into one
// queue entry, and the spool holds about one segment and one request, not
// the storm. After
// a restart the one alert is delivered, with the newest event's values.
func TestStormDoesNotGrowTheSpool(t *testing.T) {
	dir := t.TempDir()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	cfg := loadConfig(t, "--alertmanager.url="+down.URL, "--storage.path="+dir, "--alertmanager.drain-timeout=0s")
	a, err := NewWithOptions(cfg, slog.New(slog.DiscardHandler), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, nil) }()
	long := strings.Repeat("A", 3000)
	for req := range 12 {
		var evs []string
		for i := range 500 {
			e := strings.Replace(ev("Storm", "Critical"), `"sh -c id"`, fmt.Sprintf(`"sh -c %s %05d"`, long, req*500+i), 1)
			evs = append(evs, e)
		}
		if r := post(t, a, http.MethodPost, "application/json", "", []byte("["+strings.Join(evs, ",")+"]")); r.code != http.StatusAccepted {
			t.Fatalf("request %d: %d %s", req, r.code, r.body)
		}
	}
	written := metricValue(t, a, "falco_am_bridge_storage_written_bytes_total")
	if written < 35<<20 {
		t.Fatalf("only %v bytes written; the test wants a storm well past a segment", written)
	}
	if got := metricValue(t, a, "falco_am_bridge_alertmanager_queue_length"); got != 1 {
		t.Fatalf("queue length %v, want the storm coalesced into 1", got)
	}
	onDisk := dirBytes(t, dir)
	t.Logf("storm: %.1f MB written, %.1f MB on disk", written/1e6, float64(onDisk)/1e6)
	// The bound: the segment holding the newest record, which one
	// request (at most web.max_request_bytes of events) can push past
	// its size, plus the empty active one.
	if onDisk > storage.DefaultSegmentBytes+(8<<20) {
		t.Errorf("%d bytes on disk after %v written for one queued alert: the spool grows with intake", onDisk, written)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	am := newFakeAM(t)
	a2 := startApp(t, "--alertmanager.url="+am.URL, "--storage.path="+dir)
	// Records written while the alert was being sent were not merged
	// into it; they come back too, and the newest wins.
	waitFor(t, "the storm's newest event delivered", func() bool {
		al := am.alerts()
		return len(al) > 0 && strings.HasSuffix(al[len(al)-1].Annotations["command"], " 05999")
	})
	if got := metricValue(t, a2, "falco_am_bridge_storage_records_replayed_total"); got > 3000 {
		t.Errorf("%v records replayed for one alert", got)
	}
}

// TestFullSpoolDropsAreCounted: past --storage.max-bytes new alerts are
// dropped, counted and the request still answered.
func TestFullSpoolDropsAreCounted(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	dir := t.TempDir()
	a := startApp(t, "--alertmanager.url="+down.URL, "--storage.path="+dir, "--storage.max-bytes=64KiB", "--alertmanager.drain-timeout=0s")
	long := strings.Repeat("x", 2000)
	for i := range 100 {
		e := strings.Replace(ev("Spool", "Warning"), `"app-0"`, fmt.Sprintf(`"pod-%04d"`, i), 1)
		e = strings.Replace(e, `"sh -c id"`, `"sh -c `+long+`"`, 1)
		if r := post(t, a, http.MethodPost, "application/json", "", []byte(e)); r.code != http.StatusAccepted {
			t.Fatalf("event %d: %d %s", i, r.code, r.body)
		}
	}
	written := metricValue(t, a, "falco_am_bridge_storage_records_written_total")
	full := metricValue(t, a, "falco_am_bridge_storage_full_dropped_alerts_total")
	if written+full != 100 || full == 0 || written == 0 {
		t.Errorf("%v written, %v dropped as full, of 100", written, full)
	}
	if b := dirBytes(t, dir); b > 64<<10 {
		t.Errorf("%d bytes on disk, over storage.max-bytes", b)
	}
	if got := metricValue(t, a, "falco_am_bridge_storage_fallback_alerts_total"); got != 0 {
		t.Errorf("storage_fallback_alerts_total = %v: a full spool drops, it does not fall back", got)
	}
}
