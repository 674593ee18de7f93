package server

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestCrossOriginRefused: a browser posting for a page of another origin
// is refused on every route that changes something or does work; the same
// request from the bridge's own page, or from a client that is not a
// browser, goes through.
func TestCrossOriginRefused(t *testing.T) {
	reloads := 0
	reg := prometheus.NewRegistry()
	h := New(Options{MaxRequestBytes: 1 << 20, MaxEventsPerRequest: 10}, Deps{
		Logger: slog.New(slog.DiscardHandler), Pipeline: &fakePipeline{}, Registry: reg,
		Reload: func() error { reloads++; return nil },
	})
	for _, tc := range []struct {
		name           string
		origin, fetch  string // Origin and Sec-Fetch-Site; "" sends none
		path, host     string
		code, reloaded int
	}{
		{name: "no browser headers", path: "/-/reload", code: 200, reloaded: 1},
		{name: "own origin", origin: "http://bridge:2802", fetch: "same-origin", path: "/-/reload", code: 200, reloaded: 1},
		{name: "own origin, old browser", origin: "http://bridge:2802", path: "/-/reload", code: 200, reloaded: 1},
		{name: "other site", origin: "http://evil.example", fetch: "cross-site", path: "/-/reload", code: 403},
		{name: "other port, same site", origin: "http://bridge:8080", fetch: "same-site", path: "/-/reload", code: 403},
		{name: "other origin, old browser", origin: "http://127.0.0.1:2802", path: "/-/reload", code: 403},
		{name: "null origin", origin: "null", path: "/-/reload", code: 403},
		{name: "same-origin claimed, Origin disagrees", origin: "http://evil.example", fetch: "same-origin", path: "/-/reload", code: 403},
		{name: "cross-site without Origin", fetch: "cross-site", path: "/-/reload", code: 403},
		{name: "ingest from another site", origin: "http://evil.example", fetch: "cross-site", path: "/", code: 403},
		{name: "ingest from Falco", path: "/", code: 202},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := reloads
			req := httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(event))
			req.Host = "bridge:2802"
			req.Header.Set("Content-Type", "application/json")
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			if tc.fetch != "" {
				req.Header.Set("Sec-Fetch-Site", tc.fetch)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.code || reloads-before != tc.reloaded {
				t.Fatalf("%d %s, %d reloads; want %d, %d reloads", rec.Code, rec.Body, reloads-before, tc.code, tc.reloaded)
			}
			if tc.code == 403 && !strings.Contains(rec.Body.String(), "cross-origin request refused") {
				t.Fatalf("403 without the reason: %s", rec.Body)
			}
		})
	}
	// Reading stays open to any origin: the pages link to each other.
	req := httptest.NewRequest(http.MethodGet, "/-/healthy", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("GET from another site: %d", rec.Code)
	}
}

// TestIngestWantsJSONType: only a JSON Content-Type is taken; what a form
// can send (text/plain, urlencoded, multipart) and a missing type get 415
// and say what to send.
func TestIngestWantsJSONType(t *testing.T) {
	p := &fakePipeline{}
	h := newHandler(p, nil, nil)
	for _, tc := range []struct {
		ctype string
		code  int
		msg   string
	}{
		{"application/json", 202, ""},
		{"application/json; charset=utf-8", 202, ""},
		{"application/x-ndjson", 202, ""},
		{"application/jsonl", 202, ""},
		{"application/vnd.falco+json", 202, ""},
		{"", 415, "no Content-Type: send the events as application/json"},
		{"text/plain", 415, "json_output: true"},
		{"text/plain;charset=UTF-8", 415, "json_output: true"},
		{"application/x-www-form-urlencoded", 415, "is not JSON: send application/json"},
		{"multipart/form-data; boundary=x", 415, "is not JSON: send application/json"},
		{"application/json; charset", 415, "cannot be parsed"},
	} {
		t.Run(tc.ctype, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(event))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.msg) {
				t.Fatalf("%d %s; want %d with %q", rec.Code, rec.Body, tc.code, tc.msg)
			}
		})
	}
	if len(p.got) != 5 {
		t.Fatalf("%d events taken, want 5", len(p.got))
	}
}
