package capture_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/hack/capture/capture"
)

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestAnswers(t *testing.T) {
	ts := httptest.NewServer(capture.New(nil))
	defer ts.Close()

	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantBody   string
	}{
		{"slack webhook", http.MethodPost, "/slack/services/T0/B0/X", http.StatusOK, "ok"},
		{"pagerduty enqueue", http.MethodPost, "/pagerduty/v2/enqueue", http.StatusAccepted, `{"status":"success","message":"Event processed"}`},
		{"unknown path", http.MethodPost, "/webhook", http.StatusNotFound, "404 page not found\n"},
		{"captures wrong method", http.MethodPost, "/captures", http.StatusMethodNotAllowed, ""},
		{"captures bad kind", http.MethodGet, "/captures?kind=email", http.StatusBadRequest, "kind: \"email\" is not one of slack, pagerduty, other\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := do(t, tt.method, ts.URL+tt.path, `{"a":1}`)
			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d", status, tt.wantStatus)
			}
			if tt.wantBody != "" && body != tt.wantBody {
				t.Errorf("body = %q, want %q", body, tt.wantBody)
			}
		})
	}
}

func TestRecordsListAndClear(t *testing.T) {
	var out bytes.Buffer
	srv := capture.New(&out)
	ts := httptest.NewServer(srv)
	defer ts.Close()

	do(t, http.MethodPost, ts.URL+"/slack/hook", `{"text":"one"}`)
	do(t, http.MethodPost, ts.URL+"/pagerduty/v2/enqueue", `{"routing_key":"k"}`)
	do(t, http.MethodPost, ts.URL+"/slack/hook", `not json`)

	status, body := do(t, http.MethodGet, ts.URL+"/captures?kind=slack", "")
	if status != http.StatusOK {
		t.Fatalf("GET /captures: %d %s", status, body)
	}
	var slack []capture.Record
	if err := json.Unmarshal([]byte(body), &slack); err != nil {
		t.Fatal(err)
	}
	if len(slack) != 2 {
		t.Fatalf("got %d slack records, want 2: %s", len(slack), body)
	}
	first := slack[0]
	if first.Kind != capture.KindSlack || first.Method != http.MethodPost || first.Path != "/slack/hook" {
		t.Errorf("first record = %+v", first)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, first.Body); err != nil || compact.String() != `{"text":"one"}` {
		t.Errorf("first body = %s", first.Body)
	}
	if first.Headers["Content-Type"] != "application/json" || first.Headers["Host"] == "" {
		t.Errorf("first headers = %v", first.Headers)
	}
	if first.Time.IsZero() {
		t.Error("first record has no time")
	}
	if slack[1].Body != nil || slack[1].RawBody != "not json" {
		t.Errorf("non-JSON body recorded as body=%s raw=%q", slack[1].Body, slack[1].RawBody)
	}

	if got := len(srv.Records("")); got != 3 {
		t.Errorf("Records(\"\") has %d records, want 3", got)
	}
	if got := len(srv.Records(capture.KindPagerDuty)); got != 1 {
		t.Errorf("Records(pagerduty) has %d records, want 1", got)
	}

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("out has %d lines, want 3:\n%s", len(lines), out.String())
	}
	var rec capture.Record
	if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil || rec.Kind != capture.KindPagerDuty {
		t.Errorf("second line = %s (err %v)", lines[1], err)
	}

	if status, _ := do(t, http.MethodDelete, ts.URL+"/captures", ""); status != http.StatusNoContent {
		t.Errorf("DELETE /captures: %d", status)
	}
	if _, body := do(t, http.MethodGet, ts.URL+"/captures", ""); strings.TrimSpace(body) != "[]" {
		t.Errorf("after DELETE, GET /captures = %s, want []", body)
	}
}

func TestConcurrentRequests(t *testing.T) {
	srv := capture.New(io.Discard)
	ts := httptest.NewServer(srv)
	defer ts.Close()

	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			path := "/slack/x"
			if i%2 == 1 {
				path = "/pagerduty/v2/enqueue"
			}
			resp, err := http.Post(ts.URL+path, "application/json", strings.NewReader(fmt.Sprintf(`{"i":%d}`, i)))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	if got := len(srv.Records("")); got != n {
		t.Errorf("recorded %d requests, want %d", got, n)
	}
}

func TestWait(t *testing.T) {
	srv := capture.New(nil)
	ts := httptest.NewServer(srv)
	defer ts.Close()

	go func() {
		time.Sleep(50 * time.Millisecond)
		resp, err := http.Post(ts.URL+"/pagerduty/v2/enqueue", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	recs, err := srv.Wait(ctx, capture.KindPagerDuty, func(r []capture.Record) bool { return len(r) == 1 })
	if err != nil || len(recs) != 1 {
		t.Fatalf("Wait = %d records, %v", len(recs), err)
	}

	short, cancelShort := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancelShort()
	if _, err := srv.Wait(short, capture.KindSlack, func(r []capture.Record) bool { return len(r) > 0 }); err == nil {
		t.Error("Wait for a Slack record that never comes returned no error")
	}
}

func TestStartOnPortZero(t *testing.T) {
	srv := capture.New(nil)
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if strings.HasSuffix(srv.Addr(), ":0") || !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") {
		t.Fatalf("Addr = %q, URL = %q", srv.Addr(), srv.URL())
	}
	if status, body := do(t, http.MethodPost, srv.URL()+"/slack/x", `{}`); status != http.StatusOK || body != "ok" {
		t.Errorf("POST /slack/x = %d %q", status, body)
	}
}
