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
)

type pipeline struct {
	got []falco.Event
	err error
}

func (p *pipeline) Accept(evs []falco.Event, _ time.Time) (Accepted, error) {
	if p.err != nil {
		return Accepted{}, p.err
	}
	p.got = append(p.got, evs...)
	return Accepted{Events: len(evs), Alerts: len(evs), Queues: 1}, nil
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
	h := newHandler(&pipeline{}, nil, nil)
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
	h := newHandler(&pipeline{err: errors.New("disk full")}, nil, nil)
	rec := do(h, http.MethodPost, "/", event)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "disk full") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

func TestReadinessSaysWhy(t *testing.T) {
	ready := errors.New("the queue of http://am:9093 is full")
	h := newHandler(&pipeline{}, func() error { return ready }, nil)
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
	h := newHandler(&pipeline{}, nil, func() error { calls++; return fail })
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
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Pipeline: &pipeline{},
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
