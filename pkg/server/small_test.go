package server

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRequestsCountedByNumericCode: the code label holds "200", "401",
// as every Prometheus exporter's does, not "OK".
func TestRequestsCountedByNumericCode(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := New(Options{MaxRequestBytes: 1 << 20, MaxEventsPerRequest: 10}, Deps{
		Logger: slog.New(slog.DiscardHandler), Pipeline: &fakePipeline{}, Gatherer: reg, Registry: reg,
	})
	do(h, http.MethodGet, "/-/healthy", "")
	do(h, http.MethodDelete, "/", "")
	want := `
# HELP falco_am_bridge_http_requests_total HTTP requests by handler and status code.
# TYPE falco_am_bridge_http_requests_total counter
falco_am_bridge_http_requests_total{code="200",handler="/-/healthy"} 1
falco_am_bridge_http_requests_total{code="405",handler="/"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "falco_am_bridge_http_requests_total"); err != nil {
		t.Error(err)
	}
}

// TestBearerAuth: the scheme is matched case-insensitively (RFC 9110),
// and POST /-/reload needs the token as POST / does.
func TestBearerAuth(t *testing.T) {
	reloads := 0
	reg := prometheus.NewRegistry()
	h := New(Options{MaxRequestBytes: 1 << 20, MaxEventsPerRequest: 10, BearerToken: func() string { return "s3cret" }}, Deps{
		Logger: slog.New(slog.DiscardHandler), Pipeline: &fakePipeline{}, Registry: reg,
		Reload: func() error { reloads++; return nil },
	})
	for _, tc := range []struct {
		path, header string
		code         int
	}{
		{"/", "Bearer s3cret", http.StatusAccepted},
		{"/", "bearer s3cret", http.StatusAccepted},
		{"/", "BEARER  s3cret", http.StatusAccepted},
		{"/", "Bearer wrong", http.StatusUnauthorized},
		{"/", "Basic s3cret", http.StatusUnauthorized},
		{"/", "s3cret", http.StatusUnauthorized},
		{"/", "", http.StatusUnauthorized},
		{"/-/reload", "", http.StatusUnauthorized},
		{"/-/reload", "bearer s3cret", http.StatusOK},
	} {
		req := httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(event))
		req.Header.Set("Content-Type", "application/json")
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.code {
			t.Errorf("%s with Authorization %q: %d, want %d", tc.path, tc.header, rec.Code, tc.code)
		}
	}
	if reloads != 1 {
		t.Errorf("%d reloads, want 1", reloads)
	}
}

// TestForwardedForIsNotTheAddress: a client's own X-Forwarded-For is not
// logged as its address; anyone can set it.
func TestForwardedForIsNotTheAddress(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	h := New(Options{MaxRequestBytes: 1 << 20, MaxEventsPerRequest: 10}, Deps{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Pipeline: &fakePipeline{}, Registry: reg,
	})
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"rule":"R"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", "203.0.113.66")
	req.RemoteAddr = "192.0.2.1:4242"
	h.ServeHTTP(httptest.NewRecorder(), req)
	if !strings.Contains(logs.String(), "remote=192.0.2.1") || strings.Contains(logs.String(), "203.0.113.66") {
		t.Errorf("logged:\n%s", logs.String())
	}
}
