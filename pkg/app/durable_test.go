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

// TestOddTimeCostsOnlyItsEvent: in durable mode, one event whose time is
// out of range (a gRPC timestamp before year 0) is refused on its own;
// the 50 valid events beside it are written to the spool, and only they
// reach Alertmanager.
func TestOddTimeCostsOnlyItsEvent(t *testing.T) {
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
// one alert (6,000 events, about 40 MB of records) is read on into the
// window, where it coalesces into one entry, so the spool soon holds about
// one segment and one request, not the storm. After a restart the one
// alert is delivered, with the newest event's values, and what was merged
// away is not sent again.
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
	waitFor(t, "the storm coalesced into one queued alert", func() bool {
		return metricValue(t, a, "falco_am_bridge_alertmanager_queue_length") == 1 &&
			metricValue(t, a, "falco_am_bridge_alertmanager_spool_backlog") == 0
	})
	// The bound: the segment holding the newest record, which one
	// request (at most web.max_request_bytes of events) can push past
	// its size, plus the empty active one. Segments go at the next sync
	// tick.
	var onDisk int64
	waitFor(t, "the spool trimmed", func() bool {
		onDisk = dirBytes(t, dir)
		return onDisk <= storage.DefaultSegmentBytes+(8<<20)
	})
	t.Logf("storm: %.1f MB written, %.1f MB on disk", written/1e6, float64(onDisk)/1e6)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	am := newFakeAM(t)
	a2 := startApp(t, "--alertmanager.url="+am.URL, "--storage.path="+dir)
	waitFor(t, "the storm's newest event delivered", func() bool {
		al := am.alerts()
		return len(al) > 0 && strings.HasSuffix(al[len(al)-1].Annotations["command"], " 05999")
	})
	waitFor(t, "the spool read to its end", func() bool {
		return metricValue(t, a2, "falco_am_bridge_alertmanager_spool_backlog") == 0 &&
			metricValue(t, a2, "falco_am_bridge_alertmanager_queue_length") == 0
	})
	if n := len(am.alerts()); n > 3 {
		t.Errorf("%d alerts sent after the restart for a storm of one", n)
	}
}

// TestFullSpool: past --storage.max-bytes, drop-oldest keeps the disk
// bound and counts what it dropped before Alertmanager's queue read it;
// refuse answers 503 with Retry-After and takes nothing. Either way every
// event is accounted for.
func TestFullSpool(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	long := strings.Repeat("x", 2000)
	event := func(i int) []byte {
		e := strings.Replace(ev("Spool", "Warning"), `"app-0"`, fmt.Sprintf(`"pod-%04d"`, i), 1)
		return []byte(strings.Replace(e, `"sh -c id"`, `"sh -c `+long+`"`, 1))
	}
	t.Run("drop-oldest", func(t *testing.T) {
		dir := t.TempDir()
		// A window of 10 alerts, so most of the 100 wait on disk.
		a := startApp(t, "--alertmanager.url="+down.URL, "--storage.path="+dir, "--storage.max-bytes=64KiB",
			"--alertmanager.queue-capacity=10", "--alertmanager.drain-timeout=0s")
		for i := range 100 {
			if r := post(t, a, http.MethodPost, "application/json", "", event(i)); r.code != http.StatusAccepted {
				t.Fatalf("event %d: %d %s", i, r.code, r.body)
			}
			if b := dirBytes(t, dir); b > 64<<10+4<<10 {
				t.Fatalf("%d bytes on disk, over storage.max-bytes", b)
			}
		}
		if w := metricValue(t, a, "falco_am_bridge_storage_records_written_total"); w != 100 {
			t.Fatalf("%v written, want 100", w)
		}
		waitFor(t, "every event in the queue, on disk or counted as dropped", func() bool {
			dropped := metricValue(t, a, "falco_am_bridge_storage_dropped_alerts_total")
			return dropped > 0 && dropped+metricValue(t, a, "falco_am_bridge_alertmanager_queue_length")+
				metricValue(t, a, "falco_am_bridge_alertmanager_spool_backlog") == 100
		})
	})
	t.Run("refuse", func(t *testing.T) {
		dir := t.TempDir()
		a := startApp(t, "--alertmanager.url="+down.URL, "--storage.path="+dir, "--storage.max-bytes=64KiB",
			"--storage.when-full=refuse", "--alertmanager.queue-capacity=10", "--alertmanager.drain-timeout=0s")
		refused := 0
		for i := range 100 {
			r := post(t, a, http.MethodPost, "application/json", "", event(i))
			switch r.code {
			case http.StatusAccepted:
			case http.StatusServiceUnavailable:
				refused++
				if r.header.Get("Retry-After") == "" {
					t.Fatalf("503 without Retry-After: %s", r.body)
				}
			default:
				t.Fatalf("event %d: %d %s", i, r.code, r.body)
			}
		}
		written := metricValue(t, a, "falco_am_bridge_storage_records_written_total")
		if refused == 0 || int(written)+refused != 100 {
			t.Fatalf("%v written, %d refused, of 100", written, refused)
		}
		if got := metricValue(t, a, "falco_am_bridge_events_refused_total"); int(got) != refused {
			t.Errorf("events_refused_total{reason=storage_full} = %v, want %d", got, refused)
		}
		if b := dirBytes(t, dir); b > 64<<10+4<<10 {
			t.Errorf("%d bytes on disk, over storage.max-bytes", b)
		}
	})
}
