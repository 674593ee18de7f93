package app

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/spf13/pflag"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/config"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/server"
)

// fakeAM is an httptest Alertmanager that records every batch it accepts.
type fakeAM struct {
	*httptest.Server
	mu      sync.Mutex
	batches []models.PostableAlerts
}

func newFakeAM(t testing.TB) *fakeAM {
	f := &fakeAM{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v2/alerts" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "unexpected request", http.StatusNotFound)
			return
		}
		var batch models.PostableAlerts
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.batches = append(f.batches, batch)
		f.mu.Unlock()
	}))
	t.Cleanup(f.Close)
	return f
}

// alerts returns every alert received, in order.
func (f *fakeAM) alerts() []*models.PostableAlert {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*models.PostableAlert
	for _, b := range f.batches {
		out = append(out, b...)
	}
	return out
}

func (f *fakeAM) rules() []string {
	var out []string
	for _, a := range f.alerts() {
		out = append(out, a.Labels["falco_rule"])
	}
	return out
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startApp runs the whole bridge in-process on 127.0.0.1:0 with the
// given extra flags.
func startApp(t *testing.T, args ...string) *App {
	t.Helper()
	return startAppWith(t, func(a *App) bool {
		resp, err := http.Get("http://" + a.Addr() + "/-/healthy")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, args...)
}

func loadConfig(t testing.TB, args ...string) *config.Config {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	if err := fs.Parse(append([]string{"--web.listen-address=127.0.0.1:0", "--alertmanager.batch-wait=0s"}, args...)); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(fs)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func startAppWith(t *testing.T, up func(*App) bool, args ...string) *App {
	t.Helper()
	return runApp(t, loadConfig(t, args...), Options{}, up)
}

// runApp starts the bridge and stops it when the test ends.
func runApp(t testing.TB, cfg *config.Config, opts Options, up func(*App) bool) *App {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := NewWithOptions(cfg, logger, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, "the bridge to be up", func() bool { return up(a) })
	return a
}

func ev(rule, priority string) string {
	return `{"output":"12:00:00.000000000: ` + priority + ` ` + rule + `","priority":"` + priority + `","rule":"` + rule +
		`","time":"2026-01-02T12:00:00.000000000Z","source":"syscall","hostname":"node-1","output_fields":{"container.name":"app","k8s.ns.name":"prod","k8s.pod.name":"app-0","proc.cmdline":"sh -c id"}}`
}

type reply struct {
	code   int
	body   string
	header http.Header
}

func post(t *testing.T, a *App, method, contentType, encoding string, body []byte) reply {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+a.Addr()+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{code: resp.StatusCode, body: string(b), header: resp.Header}
}

func gzipped(t *testing.T, s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestIngestDelivers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     []byte
		encoding string
		rules    []string
	}{
		{"one event", []byte(ev("Terminal shell in container", "Critical")), "", []string{"Terminal shell in container"}},
		{"array", []byte("[" + ev("Rule A", "Warning") + "," + ev("Rule B", "Notice") + "]"), "", []string{"Rule A", "Rule B"}},
		{"newline-delimited", []byte(ev("Rule A", "Warning") + "\n" + ev("Rule B", "Notice") + "\n"), "", []string{"Rule A", "Rule B"}},
		{"gzip", gzipped(t, ev("Rule G", "Error")), "gzip", []string{"Rule G"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			am := newFakeAM(t)
			a := startApp(t, "--alertmanager.url="+am.URL)
			r := post(t, a, http.MethodPost, "application/json", tc.encoding, tc.body)
			if r.code != http.StatusAccepted {
				t.Fatalf("got %d %s, want 202", r.code, r.body)
			}
			var ans server.IngestAnswer
			if err := json.Unmarshal([]byte(r.body), &ans); err != nil || ans.Status != "accepted" || ans.Events != len(tc.rules) || ans.Alerts != len(tc.rules) {
				t.Fatalf("answer %s (%v)", r.body, err)
			}
			waitFor(t, "delivery", func() bool { return len(am.alerts()) == len(tc.rules) })
			if got := strings.Join(am.rules(), ","); got != strings.Join(tc.rules, ",") {
				t.Fatalf("delivered %s, want %v", got, tc.rules)
			}
			al := am.alerts()[0]
			if al.Labels["pod_name"] != "app-0" || al.Labels["namespace"] != "prod" || al.Annotations["command"] != "sh -c id" || al.Annotations["summary"] == "" {
				t.Fatalf("alert %+v", al)
			}
		})
	}
}

func TestIngestBadEventKeepsTheGoodOnes(t *testing.T) {
	am := newFakeAM(t)
	a := startApp(t, "--alertmanager.url="+am.URL)
	bad := `{"rule":"Bad","priority":"Warning","time":"yesterday"}`
	r := post(t, a, http.MethodPost, "application/json", "", []byte(ev("Good 1", "Warning")+"\n"+bad+"\n"+ev("Good 2", "Error")))
	if r.code != http.StatusBadRequest {
		t.Fatalf("got %d, want 400", r.code)
	}
	var ans server.IngestAnswer
	if err := json.Unmarshal([]byte(r.body), &ans); err != nil {
		t.Fatal(err)
	}
	if ans.Events != 2 || ans.Rejected != 1 || len(ans.Errors) != 1 {
		t.Fatalf("answer %s", r.body)
	}
	e := ans.Errors[0]
	if e.Index != 1 || e.Line != 2 || e.Field != "time" || !strings.Contains(e.Expected, "RFC3339") || e.Got != `"yesterday"` {
		t.Fatalf("error %+v", e)
	}
	waitFor(t, "the valid events", func() bool { return len(am.alerts()) == 2 })
	if got := strings.Join(am.rules(), ","); got != "Good 1,Good 2" {
		t.Fatalf("delivered %s", got)
	}
	if got := metricValue(t, a, "falco_am_bridge_events_invalid_total"); got != 1 {
		t.Fatalf("events_invalid_total = %v", got)
	}
}

func TestIngestRefusals(t *testing.T) {
	am := newFakeAM(t)
	a := startApp(t, "--alertmanager.url="+am.URL, "--web.max-request-bytes=2KiB", "--web.max-events-per-request=3")
	big := []byte(`{"rule":"R","priority":"Debug","time":"2026-01-02T12:00:00Z","output":"` + strings.Repeat("x", 3000) + `"}`)
	for _, tc := range []struct {
		name, method, ctype, encoding string
		body                          []byte
		code                          int
		msg                           string
	}{
		{"wrong method", http.MethodDelete, "", "", nil, http.StatusMethodNotAllowed, "Method Not Allowed"},
		{"put", http.MethodPut, "application/json", "", []byte(ev("R", "Debug")), http.StatusMethodNotAllowed, ""},
		{"too large", http.MethodPost, "application/json", "", big, http.StatusRequestEntityTooLarge, "web.max_request_bytes"},
		{"too large after gunzip", http.MethodPost, "application/json", "gzip", gzipped(t, string(big)), http.StatusRequestEntityTooLarge, "web.max_request_bytes"},
		{"too many events", http.MethodPost, "application/json", "", []byte(strings.Repeat(ev("R", "Debug")+"\n", 4)), http.StatusRequestEntityTooLarge, "web.max_events_per_request"},
		{"falco text output", http.MethodPost, "text/plain", "", []byte("12:00:00.000000000: Warning A shell (user=root)"), http.StatusUnsupportedMediaType, "json_output: true"},
		{"unknown encoding", http.MethodPost, "application/json", "br", []byte(ev("R", "Debug")), http.StatusUnsupportedMediaType, "gzip"},
		{"broken gzip", http.MethodPost, "application/json", "gzip", []byte("not gzip"), http.StatusBadRequest, "gzip"},
		{"empty", http.MethodPost, "application/json", "", nil, http.StatusBadRequest, "empty body"},
		{"json type, not json", http.MethodPost, "application/json", "", []byte("hello"), http.StatusBadRequest, "not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, a, tc.method, tc.ctype, tc.encoding, tc.body)
			if r.code != tc.code || !strings.Contains(r.body, tc.msg) {
				t.Fatalf("got %d %s, want %d with %q", r.code, r.body, tc.code, tc.msg)
			}
			if tc.code == http.StatusMethodNotAllowed && !strings.Contains(r.header.Get("Allow"), http.MethodPost) {
				t.Fatalf("405 without Allow: POST (%v)", r.header)
			}
		})
	}
	// JSON sent as text/plain is refused too: it is what an HTML form
	// on another site can post.
	if r := post(t, a, http.MethodPost, "text/plain", "", []byte(ev("Form", "Debug"))); r.code != http.StatusUnsupportedMediaType {
		t.Fatalf("JSON sent as text/plain: %d %s", r.code, r.body)
	}
	if got := metricValue(t, a, "falco_am_bridge_events_received_total"); got != 0 {
		t.Fatalf("events_received_total = %v after refusals", got)
	}
}

func TestOneBatchReachesEveryAlertmanager(t *testing.T) {
	am1, am2 := newFakeAM(t), newFakeAM(t)
	a := startApp(t, "--alertmanager.url="+am1.URL, "--alertmanager.url="+am2.URL)
	body := "[" + ev("Rule A", "Warning") + "," + ev("Rule B", "Critical") + "," + ev("Rule C", "Notice") + "]"
	r := post(t, a, http.MethodPost, "application/json", "", []byte(body))
	if r.code != http.StatusAccepted || !strings.Contains(r.body, `"alertmanagers":2`) {
		t.Fatalf("got %d %s", r.code, r.body)
	}
	for i, am := range []*fakeAM{am1, am2} {
		waitFor(t, "delivery", func() bool { return len(am.alerts()) == 3 })
		am.mu.Lock()
		n := len(am.batches)
		am.mu.Unlock()
		if n != 1 {
			t.Errorf("Alertmanager %d got %d batches, want one with all three alerts", i+1, n)
		}
		if got := strings.Join(am.rules(), ","); got != "Rule A,Rule B,Rule C" {
			t.Errorf("Alertmanager %d got %s", i+1, got)
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	am := newFakeAM(t)
	a := startApp(t, "--alertmanager.url="+am.URL)
	for _, path := range []string{"/-/healthy", "/-/ready", "/metrics"} {
		resp, err := http.Get("http://" + a.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
}

// metricValue sums the samples of a counter or gauge of the bridge.
func metricValue(t *testing.T, a *App, name string) float64 {
	t.Helper()
	mfs, err := a.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		sum := 0.0
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		return sum
	}
	t.Fatalf("metric %s not found", name)
	return 0
}
