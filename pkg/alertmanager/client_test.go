package alertmanager

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestAlertsURL(t *testing.T) {
	for _, tc := range []struct {
		base, want string
	}{
		{"http://am:9093", "http://am:9093/api/v2/alerts"},
		{"http://am:9093/", "http://am:9093/api/v2/alerts"},
		{"http://host/am", "http://host/am/api/v2/alerts"},
		{"http://host/am/", "http://host/am/api/v2/alerts"},
		{"https://host/a/b/alertmanager/", "https://host/a/b/alertmanager/api/v2/alerts"},
		{"https://user:secret@host:8443/am", "https://user:secret@host:8443/am/api/v2/alerts"},
		{"http://host/am?tenant=x", "http://host/am/api/v2/alerts?tenant=x"},
	} {
		t.Run(tc.base, func(t *testing.T) {
			base, err := url.Parse(tc.base)
			if err != nil {
				t.Fatal(err)
			}
			got := AlertsURL(base).String()
			if got != tc.want {
				t.Errorf("AlertsURL(%s) = %s, want %s", tc.base, got, tc.want)
			}
			if base.String() != tc.base {
				t.Errorf("AlertsURL changed its argument to %s", base)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, header string
		want         time.Duration
	}{
		{"empty", "", 0},
		{"seconds", "1", time.Second},
		{"seconds with spaces", " 120 ", 2 * time.Minute},
		{"zero", "0", 0},
		{"negative", "-5", 0},
		{"fraction", "1.5", 0},
		{"garbage", "soon", 0},
		{"http date ahead", now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{"http date behind", now.Add(-30 * time.Second).Format(http.TimeFormat), 0},
		{"http date now", now.Format(http.TimeFormat), 0},
		{"rfc850 date", now.Add(time.Minute).Format("Monday, 02-Jan-06 15:04:05 GMT"), time.Minute},
		{"asctime date", now.Add(2 * time.Hour).Format(time.ANSIC), 2 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseRetryAfter(tc.header, now); got != tc.want {
				t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.header, got, tc.want)
			}
		})
	}
}

func TestClientPostClassifies(t *testing.T) {
	for _, tc := range []struct {
		status     int
		retryAfter string
		body       string
		want       outcome
		wantWait   time.Duration
	}{
		{status: 200, want: outcomeOK},
		{status: 202, want: outcomeOK},
		{status: 500, want: outcomeRetry},
		{status: 502, want: outcomeRetry},
		{status: 503, retryAfter: "7", want: outcomeRetry, wantWait: 7 * time.Second},
		{status: 429, retryAfter: "2", want: outcomeRetry, wantWait: 2 * time.Second},
		{status: 400, body: "bad label", want: outcomeRejected},
		{status: 401, want: outcomeConfig},
		{status: 403, want: outcomeConfig},
		{status: 404, want: outcomeConfig},
		{status: 409, want: outcomeRejected},
		{status: 413, want: outcomeRejected},
		{status: 415, want: outcomeRejected},
		{status: 422, retryAfter: "9", want: outcomeRejected},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c := &client{url: srv.URL, http: srv.Client(), timeout: 5 * time.Second, userAgent: "test"}
			r := c.post(context.Background(), []byte("[]"), time.Now())
			if r.outcome != tc.want {
				t.Errorf("outcome = %v, want %v", r.outcome, tc.want)
			}
			if r.status != tc.status {
				t.Errorf("status = %d, want %d", r.status, tc.status)
			}
			if r.retryAfter != tc.wantWait {
				t.Errorf("retryAfter = %v, want %v", r.retryAfter, tc.wantWait)
			}
			if tc.body != "" && !strings.Contains(r.Error(), tc.body) {
				t.Errorf("Error() = %q, want it to contain the body %q", r.Error(), tc.body)
			}
		})
	}
}

func TestClientPostReadsAtMost1KiBOfAnErrorBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(strings.Repeat("x", 10<<10)))
	}))
	defer srv.Close()
	c := &client{url: srv.URL, http: srv.Client(), timeout: 5 * time.Second}
	r := c.post(context.Background(), []byte("[]"), time.Now())
	if len(r.body) != maxErrorBody {
		t.Errorf("kept %d bytes of the error body, want %d", len(r.body), maxErrorBody)
	}
}

func TestClientPostNetworkErrors(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		c := &client{url: AlertsURL(closedURL(t)).String(), http: &http.Client{}, timeout: 5 * time.Second}
		r := c.post(context.Background(), []byte("[]"), time.Now())
		if r.outcome != outcomeRetry || r.err == nil {
			t.Errorf("outcome = %v, err = %v; want a retryable error", r.outcome, r.err)
		}
	})

	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices a client going away only once the body
		// has been read.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}))
	defer hung.Close()

	t.Run("timeout", func(t *testing.T) {
		c := &client{url: hung.URL, http: hung.Client(), timeout: 50 * time.Millisecond}
		r := c.post(context.Background(), []byte("[]"), time.Now())
		if r.outcome != outcomeRetry {
			t.Errorf("outcome = %v, want %v: a timeout is worth another try", r.outcome, outcomeRetry)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		c := &client{url: hung.URL, http: hung.Client(), timeout: time.Minute}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		r := c.post(ctx, []byte("[]"), time.Now())
		if r.outcome != outcomeCancelled {
			t.Errorf("outcome = %v, want %v", r.outcome, outcomeCancelled)
		}
	})
}
