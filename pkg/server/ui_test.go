package server

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/pipeline"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/status"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/translate"
)

// oneQueue takes every alert into one queue, at once.
type oneQueue struct{}

func (oneQueue) SendAll([]*alert.Wire, pipeline.Ack) (int, error) { return 1, nil }

func newUIHandler(t *testing.T, token string) (http.Handler, *status.Recent) {
	t.Helper()
	m, err := mapping.Default()
	if err != nil {
		t.Fatal(err)
	}
	recent := status.NewRecent(0, 0)
	reg := prometheus.NewRegistry()
	ui := &UI{
		Recent:  recent,
		Mapping: func() *mapping.Mapping { return m },
		Status: func() (status.Status, error) {
			s := status.Status{Version: "test", Started: time.Now()}
			s.Recent.Events = recent.List()
			return s, s.FromMetrics(reg, nil)
		},
	}
	h := New(Options{MaxRequestBytes: 1 << 20, MaxEventsPerRequest: 10, BearerToken: func() string { return token }}, Deps{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Pipeline: pipeline.New(pipeline.Options{
			Mapping: func() *mapping.Mapping { return m }, Sink: oneQueue{}, Recorder: recent,
			Logger: slog.New(slog.DiscardHandler), Registry: reg,
		}),
		Gatherer: reg, Registry: reg, UI: ui,
	})
	return h, recent
}

func doAuth(h http.Handler, method, path, body, auth string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

const hostile = `{"rule":"<img src=x onerror=alert(1)>","priority":"Critical","time":"2026-01-02T00:00:00Z","output":"</pre><script>alert(2)</script>",` +
	`"output_fields":{"proc.cmdline":"\"><script>alert(3)</script>","k8s.ns.name":"ns"}}`

func TestStatusPageEscapesEventText(t *testing.T) {
	h, _ := newUIHandler(t, "")
	if rec := do(h, http.MethodPost, "/", hostile); rec.Code != http.StatusAccepted {
		t.Fatalf("ingest: %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, http.MethodPost, "/", `{"rule":"<script>alert(4)</script>"}`); rec.Code != http.StatusBadRequest {
		t.Fatalf("ingest of an invalid event: %d", rec.Code)
	}
	for _, path := range []string{"/", "/ui/status"} {
		rec := do(h, http.MethodGet, path, "")
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d", path, rec.Code)
		}
		page := rec.Body.String()
		for _, bad := range []string{"<img src=x", "<script>alert", `"><script>`} {
			if strings.Contains(page, bad) {
				t.Errorf("%s holds %q unescaped", path, bad)
			}
		}
		for _, good := range []string{"&lt;img src=x onerror=alert(1)&gt;", "&lt;script&gt;alert(4)&lt;/script&gt;", "rejected"} {
			if !strings.Contains(page, good) {
				t.Errorf("%s does not show %q", path, good)
			}
		}
		// The only script is the page's own file.
		if n := strings.Count(page, "<script"); n > 1 || (n == 1 && !strings.Contains(page, `<script src="static/status.js"></script>`)) {
			t.Errorf("%s has inline script", path)
		}
		csp := rec.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
	rec := do(h, http.MethodGet, "/static/status.js", "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("status.js: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec := do(h, http.MethodGet, "/static/../ui.go", ""); rec.Code != http.StatusNotFound {
		t.Fatalf("path outside the assets: %d", rec.Code)
	}
}

func TestUIAuth(t *testing.T) {
	h, _ := newUIHandler(t, "t0ken")
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	for _, path := range []string{"/", "/ui/status", "/playground", "/static/style.css", "/api/v1/status", "/api/v1/samples", "POST /api/v1/translate"} {
		method := http.MethodGet
		if m, p, ok := strings.Cut(path, " "); ok {
			method, path = m, p
		}
		body := `{"event":` + event + `}`
		for _, tc := range []struct {
			auth string
			want int
		}{
			{"", http.StatusUnauthorized},
			{"Bearer wrong", http.StatusUnauthorized},
			{basic("admin", "wrong"), http.StatusUnauthorized},
			{"Bearer t0ken", http.StatusOK},
			{basic("anyone", "t0ken"), http.StatusOK},
		} {
			rec := doAuth(h, method, path, body, tc.auth)
			if rec.Code != tc.want {
				t.Errorf("%s %s with %q: %d, want %d", method, path, tc.auth, rec.Code, tc.want)
			}
			if rec.Code == http.StatusUnauthorized && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("%s %s: 401 without a basic-auth challenge", method, path)
			}
		}
	}
}

func TestUIOff(t *testing.T) {
	h := newHandler(&fakePipeline{}, nil, nil) // Deps.UI nil
	for _, path := range []string{"/", "/playground", "/api/v1/status", "/static/status.js"} {
		if rec := do(h, http.MethodGet, path, ""); rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("GET %s with the UI off: %d", path, rec.Code)
		}
	}
	if rec := do(h, http.MethodPost, "/api/v1/translate", `{"event":{}}`); rec.Code != http.StatusNotFound {
		t.Errorf("translate with the UI off: %d", rec.Code)
	}
	if rec := do(h, http.MethodPost, "/", event); rec.Code != http.StatusAccepted {
		t.Errorf("ingest with the UI off: %d", rec.Code)
	}
}

func translateCall(t *testing.T, h http.Handler, body string) (int, translate.Answer, string) {
	t.Helper()
	rec := do(h, http.MethodPost, "/api/v1/translate", body)
	var ans translate.Answer
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
			t.Fatal(err)
		}
	}
	return rec.Code, ans, rec.Body.String()
}

const shell = `{"rule":"Terminal shell in container","priority":"Warning","time":"2026-01-02T00:00:00Z","output_fields":{"k8s.ns.name":"shop","k8s.pod.name":"web-1"}}`

func TestTranslateAPI(t *testing.T) {
	h, recent := newUIHandler(t, "")
	quoted, _ := json.Marshal(shell)
	for _, tc := range []struct {
		name   string
		body   string
		code   int
		alerts int
		check  func(t *testing.T, ans translate.Answer)
	}{
		{name: "object, running mapping", body: `{"event":` + shell + `}`, code: 200, alerts: 1, check: func(t *testing.T, ans translate.Answer) {
			if ans.Alerts[0].Labels["alertname"] != "TerminalShellInContainer" || ans.Alerts[0].Labels["namespace"] != "shop" {
				t.Errorf("labels %v", ans.Alerts[0].Labels)
			}
		}},
		{name: "string of JSON", body: `{"event":` + string(quoted) + `}`, code: 200, alerts: 1},
		{name: "newline-delimited", body: `{"event":` + string(mustJSON(shell+"\n"+shell)) + `}`, code: 200, alerts: 2, check: func(t *testing.T, ans translate.Answer) {
			if len(ans.AlertEvents) != 2 || ans.AlertEvents[1] != 1 {
				t.Errorf("alert_events %v", ans.AlertEvents)
			}
		}},
		{name: "own mapping", body: `{"event":` + shell + `,"mapping":"labels:\n  alertname: x\n  team: '{{ .Field \"k8s.ns.name\" }}'\n"}`, code: 200, alerts: 1, check: func(t *testing.T, ans translate.Answer) {
			if l := ans.Alerts[0].Labels; l["team"] != "shop" || l["alertname"] != "x" {
				t.Errorf("labels %v", l)
			}
		}},
		{name: "mapping that does not compile", body: `{"event":` + shell + `,"mapping":"labels:\n  alertname: x\n  team: '{{ .Field \"a\" '\n"}`, code: 200, check: func(t *testing.T, ans translate.Answer) {
			if len(ans.Errors) != 1 || ans.Errors[0].Kind != "mapping_file" || ans.Errors[0].Line != 3 || !strings.HasPrefix(ans.Errors[0].Message, "mapping.yaml:3: ") {
				t.Errorf("errors %+v", ans.Errors)
			}
		}},
		{name: "invalid event", body: `{"event":{"rule":"r"}}`, code: 200, check: func(t *testing.T, ans translate.Answer) {
			if len(ans.Errors) != 1 || ans.Errors[0].Kind != "invalid" || ans.Errors[0].Line != 1 || !strings.Contains(ans.Errors[0].Message, `field "priority"`) {
				t.Errorf("errors %+v", ans.Errors)
			}
		}},
		{name: "dropped", body: `{"event":` + shell + `,"mapping":"min_priority: error\nlabels:\n  alertname: A\n"}`, code: 200, check: func(t *testing.T, ans translate.Answer) {
			if len(ans.Errors) != 1 || ans.Errors[0].Kind != "dropped" {
				t.Errorf("errors %+v", ans.Errors)
			}
		}},
		{name: "too many events", body: `{"event":` + string(mustJSON(strings.Repeat(shell+"\n", translate.MaxEvents+1))) + `}`, code: 200, alerts: translate.MaxEvents, check: func(t *testing.T, ans translate.Answer) {
			if len(ans.Errors) != 1 || !strings.Contains(ans.Errors[0].Message, "at most 100 events") {
				t.Errorf("errors %+v", ans.Errors)
			}
		}},
		{name: "no event", body: `{"mapping":""}`, code: 400},
		{name: "not JSON", body: `event=1`, code: 400},
		{name: "too large", body: `{"event":"` + strings.Repeat("x", translateMaxBytes) + `"}`, code: 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, ans, raw := translateCall(t, h, tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %.300s", code, tc.code, raw)
			}
			if code == 200 && len(ans.Alerts) != tc.alerts {
				t.Fatalf("%d alerts, want %d: %.300s", len(ans.Alerts), tc.alerts, raw)
			}
			if tc.check != nil {
				tc.check(t, ans)
			}
		})
	}
	if n := len(recent.List()); n != 0 {
		t.Fatalf("translating recorded %d events as received", n)
	}
}

func mustJSON(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

func TestUIKeepsIngestMethodAnswers(t *testing.T) {
	h, _ := newUIHandler(t, "")
	for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch} {
		rec := do(h, m, "/", event)
		if rec.Code != http.StatusMethodNotAllowed || !strings.Contains(rec.Header().Get("Allow"), http.MethodPost) {
			t.Errorf("%s /: %d, Allow %q", m, rec.Code, rec.Header().Get("Allow"))
		}
	}
}
