package alertmanager

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/alertmanager/api/v2/models"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
)

// TestRedirects: a 2xx counts as sent only when it answers a POST of the
// batch. 307 and 308 keep the method and body and are followed; 301, 302
// and 303 would turn the POST into a GET, so they are refused as a
// configuration error, logged once with the target, and the batch is
// dropped after a bounded number of tries.
func TestRedirects(t *testing.T) {
	t.Parallel()
	for _, code := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			target := newFakeAM(t, status(http.StatusOK))
			// What a GET of the target answers: 200, as a UI or a
			// proxy's landing page would.
			var gets atomic.Int32
			mux := http.NewServeMux()
			mux.HandleFunc("/api/v2/alerts", func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodGet {
					gets.Add(1)
					return
				}
				target.serveHTTP(w, r)
			})
			to := httptest.NewServer(mux)
			t.Cleanup(to.Close)
			from := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, to.URL+r.URL.Path, code)
			}))
			t.Cleanup(from.Close)
			var logs lockedBuffer
			logger := slog.New(slog.NewTextHandler(&logs, nil))
			base := mustURL(t, from.URL)
			m, reg := newTestManager(t, testOptions(), logger, base)
			for i := range 3 {
				m.Send(testAlert("n", strconv.Itoa(i)), nil)
			}
			name := base.String()
			if code == 307 || code == 308 {
				waitValue(t, reg, 3, "alerts_sent_total", name)
				if got := target.storedValues("n"); len(got) != 3 {
					t.Fatalf("the target stored %v", got)
				}
				return
			}
			waitValue(t, reg, 3, "alerts_dropped_total", name, "reason", DropRedirect)
			if v := value(t, reg, "alerts_sent_total", name); v != 0 {
				t.Errorf("alerts_sent_total = %v after a %d: no Alertmanager stored them", v, code)
			}
			if gets.Load() != 0 || len(target.seen()) != 0 {
				t.Errorf("the redirect was followed: %d GETs, %d POSTs", gets.Load(), len(target.seen()))
			}
			if n := strings.Count(logs.String(), "redirect"); n == 0 || !strings.Contains(logs.String(), to.URL) {
				t.Errorf("the redirect and its target are not logged:\n%s", logs.String())
			}
			if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
				t.Errorf("%d ERROR lines, want one:\n%s", n, logs.String())
			}
		})
	}
}

// TestAuthErrorsAreNotDelivered: 401, 403 and 404 say the bridge is set up
// wrong, not that the alert is bad. They are never counted as sent; the
// batch is tried a bounded number of times (a rotated token may come
// back), then dropped, counted by reason.
func TestAuthErrorsAreNotDelivered(t *testing.T) {
	t.Parallel()
	for code, reason := range map[int]string{401: DropUnauthorized, 403: DropForbidden, 404: DropNotFound} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			f := newFakeAM(t, status(code))
			m, reg := newTestManager(t, testOptions(), nil, f.base())
			m.Send(testAlert("n", "1"), nil)
			waitValue(t, reg, 1, "alerts_dropped_total", f.name(), "reason", reason)
			if n := len(f.seen()); n != maxConfigErrorTries {
				t.Errorf("%d tries, want %d", n, maxConfigErrorTries)
			}
			if v := value(t, reg, "alerts_sent_total", f.name()); v != 0 {
				t.Errorf("alerts_sent_total = %v", v)
			}
		})
	}
}

// TestTooLargeIsSplit: a 413 for a batch is resent alert by alert, as a
// 400 is, so a proxy's body limit does not cost the batch.
func TestTooLargeIsSplit(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	f := newFakeAM(t, gated(gate, func(_ http.ResponseWriter, _ *http.Request, _ int, alerts models.PostableAlerts) int {
		if len(alerts) > 1 {
			return http.StatusRequestEntityTooLarge
		}
		return http.StatusOK
	}))
	m, reg := newTestManager(t, testOptions(), nil, f.base())
	m.Send(testAlert("n", "blocker"), nil)
	f.waitRequests(t, 1)
	m.SendAlerts([]*alert.Alert{testAlert("n", "a"), testAlert("n", "b"), testAlert("n", "c")})
	close(gate)
	waitValue(t, reg, 4, "alerts_sent_total", f.name())
	got := f.storedValues("n")
	slices.Sort(got)
	if fmt.Sprint(got) != "[a b blocker c]" {
		t.Errorf("stored %v", got)
	}
}

// TestRefusalLogIsBounded: 1,000 alerts refused one by one make a few log
// lines that carry the counts, not one line per alert.
func TestRefusalLogIsBounded(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	f := newFakeAM(t, gated(gate, status(http.StatusBadRequest)))
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	opts := testOptions()
	m, reg := newTestManager(t, opts, logger, f.base())
	m.Send(testAlert("n", "blocker"), nil)
	f.waitRequests(t, 1)
	var alerts []*alert.Alert
	for i := range 1000 {
		alerts = append(alerts, testAlert("n", strconv.Itoa(i)))
	}
	m.SendAlerts(alerts)
	close(gate)
	waitValue(t, reg, 1000, "alerts_dropped_total", f.name(), "reason", DropRejected)
	lines := strings.Count(logs.String(), "rejected")
	t.Logf("%d log lines for 1,000 refused alerts", lines)
	if lines > 5 {
		t.Errorf("%d log lines about refused alerts:\n%.2000s", lines, logs.String())
	}
}
