package server

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/pipeline"
)

// fakePipeline evaluates bodies with the built-in mapping and keeps the
// valid events, or refuses every body with err.
type fakePipeline struct {
	got []falco.Event
	err error
}

func (p *fakePipeline) Run(body []byte, received time.Time, lim falco.Limits) *pipeline.Body {
	m, err := mapping.Default()
	if err != nil {
		panic(err)
	}
	b := pipeline.Evaluate(m, body, received, lim)
	if b.TooMany {
		return b
	}
	if p.err != nil {
		b.Err = &pipeline.Unavailable{Reason: pipeline.ReasonStorageError, Err: p.err, RetryAfter: time.Second}
		return b
	}
	for _, o := range b.Outcomes {
		if o.Event != nil {
			p.got = append(p.got, *o.Event)
		}
	}
	b.Queues = 1
	return b
}

func newHandler(p Pipeline, ready func() error, reload func() error) http.Handler {
	reg := prometheus.NewRegistry()
	return New(Options{MaxRequestBytes: 1 << 20, MaxEventsPerRequest: 10}, Deps{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Pipeline: p,
		Ready: ready, Reload: reload, Gatherer: reg, Registry: reg,
	})
}

func do(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

const event = `{"rule":"R","priority":"Debug","time":"2026-01-02T00:00:00Z"}`

func TestErrorsAreJSON(t *testing.T) {
	h := newHandler(&fakePipeline{}, nil, nil)
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodDelete, "/", http.StatusMethodNotAllowed},
		{http.MethodPost, "/-/reload", http.StatusNotFound}, // no reload function
	} {
		rec := do(h, tc.method, tc.path, "")
		var body errorBody
		if rec.Code != tc.code || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.Status != "error" || body.Error == "" {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, rec.Code, rec.Body)
		}
	}
	if rec := do(h, http.MethodHead, "/-/healthy", ""); rec.Code != http.StatusOK {
		t.Errorf("HEAD /-/healthy: %d", rec.Code)
	}
}

func TestPipelineFailureIs503(t *testing.T) {
	h := newHandler(&fakePipeline{err: errors.New("disk full")}, nil, nil)
	rec := do(h, http.MethodPost, "/", event)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "disk full") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

func TestReadinessSaysWhy(t *testing.T) {
	ready := errors.New("the queue of http://am:9093 is full")
	h := newHandler(&fakePipeline{}, func() error { return ready }, nil)
	rec := do(h, http.MethodGet, "/-/ready", "")
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "is full") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	ready = nil
	if rec := do(h, http.MethodGet, "/-/ready", ""); rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

func TestReload(t *testing.T) {
	var fail error
	calls := 0
	h := newHandler(&fakePipeline{}, nil, func() error { calls++; return fail })
	if rec := do(h, http.MethodPost, "/-/reload", ""); rec.Code != http.StatusOK || calls != 1 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	fail = errors.New("mapping.yaml:3: labels.x: bad")
	rec := do(h, http.MethodPost, "/-/reload", "")
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "mapping.yaml:3") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if rec := do(h, http.MethodGet, "/-/reload", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /-/reload: %d", rec.Code)
	}
}

func TestErrorListIsCapped(t *testing.T) {
	h := New(Options{MaxRequestBytes: 1 << 20, MaxEventsPerRequest: 1000}, Deps{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Pipeline: &fakePipeline{},
	})
	body := strings.Repeat(`{"rule":"R"}`+"\n", 150)
	rec := do(h, http.MethodPost, "/", body)
	var ans IngestAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusBadRequest || ans.Rejected != 150 || len(ans.Errors) != maxErrorsShown || !ans.ErrorsTruncated {
		t.Fatalf("%d rejected=%d listed=%d truncated=%v", rec.Code, ans.Rejected, len(ans.Errors), ans.ErrorsTruncated)
	}
}

// TestAnswerAccountsForEveryEvent checks that accepted + rejected is every
// event sent, or that the answer says from which event on nothing was
// read, and that a hostile body is refused with the limit it broke.
func TestAnswerAccountsForEveryEvent(t *testing.T) {
	bad := `{"rule": x}`
	for _, tc := range []struct {
		name               string
		body               string
		code               int
		accepted, rejected int
		unread             int // -1: none
		msg                string
	}{
		{"array with a broken element", "[" + event + ",\n" + bad + ",\n" + event + "]", http.StatusBadRequest, 2, 1, -1, "line 2"},
		{"missing comma", "[" + event + " " + event + "]", http.StatusBadRequest, 1, 0, 1, "',' or ']' after event 0"},
		{"ndjson with a broken line", event + "\n" + bad + "\n" + event + "\n", http.StatusBadRequest, 2, 1, -1, "event 1 (line 2)"},
		{"deep nesting", `{"rule":"R","priority":"Debug","time":"2026-01-02T00:00:00Z",` + strings.Repeat(`"a":{`, 20000) + strings.Repeat("}", 20000) + "}", http.StatusBadRequest, 0, 1, -1, "nested at most 32 deep"},
		{"pretty single event", "{\n\"rule\": \"R\",\n\"priority\": \"Debug\",\n\"time\": \"2026-01-02T00:00:00Z\",\n\"container\":\n{\"name\": \"c\"}\n}", http.StatusAccepted, 1, 0, -1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &fakePipeline{}
			rec := do(newHandler(p, nil, nil), http.MethodPost, "/", tc.body)
			var ans IngestAnswer
			if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
				t.Fatal(err)
			}
			unread := -1
			if ans.Unread != nil {
				unread = *ans.Unread
			}
			if rec.Code != tc.code || ans.Events != tc.accepted || ans.Rejected != tc.rejected || unread != tc.unread || !strings.Contains(rec.Body.String(), tc.msg) {
				t.Fatalf("%d accepted=%d rejected=%d unread=%d: %s", rec.Code, ans.Events, ans.Rejected, unread, rec.Body)
			}
			if len(p.got) != tc.accepted {
				t.Fatalf("the pipeline got %d events", len(p.got))
			}
		})
	}
}

// TestAcceptedAnswerIsItsJSON: the 202 answer, written by hand, is what
// encoding/json makes of IngestAnswer.
func TestAcceptedAnswerIsItsJSON(t *testing.T) {
	for _, a := range []IngestAnswer{
		{Status: "accepted"},
		{Status: "accepted", Accepted: Accepted{Events: 100, Alerts: 99, Dropped: 1, MappingErrors: 12, Queues: 3}},
		{Status: "accepted", Accepted: Accepted{Events: 1 << 40, Alerts: -1}},
	} {
		want, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(a.appendAccepted(nil)); got != string(want)+"\n" {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
}
