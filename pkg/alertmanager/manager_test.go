package alertmanager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/prometheus/common/model"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
)

// closeWithin calls m.Close and fails the test if it does not return
// within waitTimeout, instead of hanging the test binary.
func closeWithin(ctx context.Context, t *testing.T, m *Manager, keep bool) (undelivered int, took time.Duration) {
	t.Helper()
	type result struct {
		n    int
		took time.Duration
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		n := m.Close(ctx, keep)
		done <- result{n, time.Since(start)}
	}()
	select {
	case r := <-done:
		return r.n, r.took
	case <-time.After(waitTimeout):
		t.Fatalf("Close did not return within %v", waitTimeout)
		return 0, 0
	}
}

// senderOf returns the sender of an Alertmanager.
func senderOf(t *testing.T, m *Manager, name string) *sender {
	t.Helper()
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.senders[name]
	if !ok {
		t.Fatalf("no sender for %s", name)
	}
	return s
}

func (f *fakeAM) waitRequests(t *testing.T, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s to see %d requests", f.name(), n), func() error {
		if got := len(f.seen()); got < n {
			return fmt.Errorf("it saw %d", got)
		}
		return nil
	})
}

func TestDeliversOneAlert(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, prefix, wantPath string
	}{
		{"root", "", "/api/v2/alerts"},
		{"path prefix", "/am", "/am/api/v2/alerts"},
		{"path prefix with slash", "/am/", "/am/api/v2/alerts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAM(t, status(http.StatusOK))
			base, err := url.Parse(f.srv.URL + tc.prefix)
			if err != nil {
				t.Fatal(err)
			}
			m, reg := newTestManager(t, testOptions(), nil, base)
			start := time.Date(2026, 5, 25, 13, 44, 5, 478000000, time.UTC)
			a := &alert.Alert{
				Labels:       labelSet("alertname", "Terminal shell in container", "namespace", "prod"),
				Annotations:  model.LabelSet{"cmdline": "bash -il", "summary": "a shell"},
				StartsAt:     start,
				EndsAt:       time.Now().Add(time.Hour).Truncate(time.Millisecond),
				GeneratorURL: "http://falco/rule",
			}
			if n, err := m.Send(a, nil); n != 1 || err != nil {
				t.Fatalf("Send = %d queues, %v; want 1", n, err)
			}
			f.waitStored(t, "alertname", "Terminal shell in container")
			waitValue(t, reg, 1, "alerts_sent_total", base.String())

			reqs := f.seen()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.method != http.MethodPost || r.path != tc.wantPath {
				t.Errorf("request %s %s, want POST %s", r.method, r.path, tc.wantPath)
			}
			if r.contentType != "application/json" {
				t.Errorf("Content-Type %q, want application/json", r.contentType)
			}
			var body models.PostableAlerts
			if err := json.Unmarshal(r.body, &body); err != nil {
				t.Fatalf("body is not PostableAlerts: %v\n%s", err, r.body)
			}
			if len(body) != 1 {
				t.Fatalf("%d alerts in the body, want 1", len(body))
			}
			got := body[0]
			if !equalMaps(got.Labels, map[string]string{"alertname": "Terminal shell in container", "namespace": "prod"}) {
				t.Errorf("labels = %v", got.Labels)
			}
			if !equalMaps(got.Annotations, map[string]string{"cmdline": "bash -il", "summary": "a shell"}) {
				t.Errorf("annotations = %v", got.Annotations)
			}
			if !time.Time(got.StartsAt).Equal(a.StartsAt) || !time.Time(got.EndsAt).Equal(a.EndsAt) {
				t.Errorf("startsAt, endsAt = %v, %v; want %v, %v", got.StartsAt, got.EndsAt, a.StartsAt, a.EndsAt)
			}
			if got.GeneratorURL != "http://falco/rule" {
				t.Errorf("generatorURL = %q", got.GeneratorURL)
			}
			if _, ok := got.Annotations[alert.MergedAnnotation]; ok {
				t.Errorf("a single event carries %s", alert.MergedAnnotation)
			}
			for _, o := range []string{"retryable_error", "rejected", "cancelled"} {
				if v := value(t, reg, "requests_total", base.String(), "outcome", o); v != 0 {
					t.Errorf("requests_total{outcome=%q} = %v, want 0", o, v)
				}
			}
			waitValue(t, reg, 0, "queue_length", base.String())
			if v := value(t, reg, "queue_capacity", base.String()); v != DefaultQueueCapacity {
				t.Errorf("queue_capacity = %v, want %v", v, DefaultQueueCapacity)
			}
		})
	}
}

func TestEmptyLabelsAreNeverNullOnTheWire(t *testing.T) {
	t.Parallel()
	f := newFakeAM(t, status(http.StatusOK))
	m, reg := newTestManager(t, testOptions(), nil, f.base())
	// Both have the same (empty) label set: one at a time, or they
	// would be merged.
	m.Send(&alert.Alert{Labels: model.LabelSet{}, EndsAt: time.Now().Add(time.Hour)}, nil)
	waitValue(t, reg, 1, "alerts_sent_total", f.name())
	m.Send(&alert.Alert{EndsAt: time.Now().Add(time.Hour)}, nil)
	waitValue(t, reg, 2, "alerts_sent_total", f.name())
	for i, r := range f.seen() {
		var raw []map[string]json.RawMessage
		if err := json.Unmarshal(r.body, &raw); err != nil {
			t.Fatal(err)
		}
		for _, a := range raw {
			if got := string(a["labels"]); got != "{}" {
				t.Errorf("request %d: labels %q, want {}", i, got)
			}
		}
		if r.status != http.StatusOK {
			t.Errorf("request %d answered %d", i, r.status)
		}
	}
}

func TestFanOut(t *testing.T) {
	t.Parallel()
	type mode struct {
		name    string
		respond func() respondFunc // nil: both up
	}
	for _, tc := range []mode{
		{"both up", nil},
		{"one answers 503", func() respondFunc { return status(http.StatusServiceUnavailable) }},
		{"one drops connections", dropConnection},
		{"one hangs", hang},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			good := newFakeAM(t, status(http.StatusOK))
			other := newFakeAM(t, status(http.StatusOK))
			if tc.respond != nil {
				other = newFakeAM(t, tc.respond())
			}
			opts := testOptions()
			// Far longer than the wait below: a hung Alertmanager
			// must not hold up the other one.
			opts.Timeout = 5 * time.Minute
			m, reg := newTestManager(t, opts, nil, good.base(), other.base())
			if got, want := m.Targets(), slices.Sorted(slices.Values([]string{good.name(), other.name()})); !slices.Equal(got, want) {
				t.Fatalf("Targets() = %v, want %v", got, want)
			}
			if v, _ := metricValue(t, reg, metricPrefix+"targets", nil); v != 2 {
				t.Errorf("targets = %v, want 2", v)
			}
			var want []string
			for i := range 5 {
				n := strconv.Itoa(i)
				want = append(want, n)
				if q, err := m.Send(testAlert("n", n), nil); q != 2 || err != nil {
					t.Fatalf("Send = %d queues, %v; want 2", q, err)
				}
				if i == 0 && tc.respond != nil {
					// The other one is failing while the rest are sent.
					other.waitRequests(t, 1)
				}
			}
			good.waitStored(t, "n", want...)
			if tc.respond == nil {
				other.waitStored(t, "n", want...)
				return
			}
			if v := value(t, reg, "alerts_sent_total", other.name()); v != 0 {
				t.Errorf("alerts_sent_total of the failing one = %v, want 0", v)
			}
			if got := other.storedValues("n"); len(got) != 0 {
				t.Errorf("the failing one stored %v", got)
			}
		})
	}
}

func TestRetriesUntilDelivered(t *testing.T) {
	t.Parallel()
	f := newFakeAM(t, func(_ http.ResponseWriter, _ *http.Request, n int, _ models.PostableAlerts) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	m, reg := newTestManager(t, testOptions(), nil, f.base())
	m.Send(testAlert("n", "x"), nil)
	f.waitStored(t, "n", "x")
	waitValue(t, reg, 1, "alerts_sent_total", f.name())
	if v := value(t, reg, "requests_total", f.name(), "outcome", "retryable_error"); v != 2 {
		t.Errorf(`requests_total{outcome="retryable_error"} = %v, want 2`, v)
	}
	if v := value(t, reg, "requests_total", f.name(), "outcome", "success"); v != 1 {
		t.Errorf(`requests_total{outcome="success"} = %v, want 1`, v)
	}
	if got, want := requestValues(f.seen(), "n"), [][]string{{"x"}, {"x"}, {"x"}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("requests carried %v, want %v", got, want)
	}
	if v := value(t, reg, "request_duration_seconds", f.name()); v != 3 {
		t.Errorf("request_duration_seconds count = %v, want 3", v)
	}
	for _, reason := range dropReasons {
		if v := value(t, reg, "alerts_dropped_total", f.name(), "reason", reason); v != 0 {
			t.Errorf("alerts_dropped_total{reason=%q} = %v, want 0", reason, v)
		}
	}
}

func TestBackoff(t *testing.T) {
	opts := &Options{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Now: time.Now}
	s := &sender{opts: func() *Options { return opts }}
	for _, tc := range []struct {
		failures int
		lo, hi   time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 200 * time.Millisecond, 400 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, 500 * time.Millisecond, time.Second},
		{100, 500 * time.Millisecond, time.Second},
	} {
		t.Run(strconv.Itoa(tc.failures), func(t *testing.T) {
			s.failures = tc.failures
			lo, hi := time.Duration(1<<62), time.Duration(0)
			for range 500 {
				d := s.backoffLocked(0)
				lo, hi = min(lo, d), max(hi, d)
			}
			if lo < tc.lo || hi > tc.hi {
				t.Errorf("backoff ranged over [%v, %v], want within [%v, %v]", lo, hi, tc.lo, tc.hi)
			}
			// Jittered: 500 draws from a range this wide differ.
			if lo == hi {
				t.Errorf("backoff was always %v, want jitter", lo)
			}
		})
	}
}

func TestBackoffGrowsWithFailures(t *testing.T) {
	t.Parallel()
	f := newFakeAM(t, func(_ http.ResponseWriter, _ *http.Request, n int, _ models.PostableAlerts) int {
		if n <= 5 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	opts := testOptions()
	opts.MinBackoff, opts.MaxBackoff = 20*time.Millisecond, time.Second
	m, _ := newTestManager(t, opts, nil, f.base())
	m.Send(testAlert("n", "x"), nil)
	f.waitStored(t, "n", "x")
	reqs := f.seen()
	// After 5 failures in a row: 20ms * 2^4, half of it jitter. Without
	// growth it would be at most 20ms.
	if gap := reqs[5].at.Sub(reqs[4].at); gap < 150*time.Millisecond {
		t.Errorf("retried %v after the fifth failure, want at least 160ms", gap)
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		status        int
		retryAfter    string
		maxRetryAfter time.Duration
		minGap        time.Duration
	}{
		// The backoff alone is at most 50ms.
		{"429 with Retry-After 1", http.StatusTooManyRequests, "1", 0, 900 * time.Millisecond},
		{"503 with Retry-After 1", http.StatusServiceUnavailable, "1", 0, 900 * time.Millisecond},
		// An hour would end the test by its timeout.
		{"capped by MaxRetryAfter", http.StatusTooManyRequests, "3600", 100 * time.Millisecond, 90 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAM(t, func(w http.ResponseWriter, _ *http.Request, n int, _ models.PostableAlerts) int {
				if n == 1 {
					w.Header().Set("Retry-After", tc.retryAfter)
					return tc.status
				}
				return http.StatusOK
			})
			opts := testOptions()
			opts.MaxRetryAfter = tc.maxRetryAfter
			m, _ := newTestManager(t, opts, nil, f.base())
			m.Send(testAlert("n", "x"), nil)
			f.waitStored(t, "n", "x")
			reqs := f.seen()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want 2", len(reqs))
			}
			gap := reqs[1].at.Sub(reqs[0].at)
			if gap < tc.minGap || gap > 5*time.Second {
				t.Errorf("retried after %v, want between %v and 5s", gap, tc.minGap)
			}
		})
	}
}

func TestNoRetryOnRejection(t *testing.T) {
	t.Parallel()
	for _, code := range []int{http.StatusBadRequest, http.StatusConflict, http.StatusUnprocessableEntity} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			f := newFakeAM(t, status(code))
			m, reg := newTestManager(t, testOptions(), nil, f.base())
			// The second alert is sent once the first was rejected:
			// had the first been kept for a retry, it would be sent
			// again before or with the second.
			m.Send(testAlert("n", "1"), nil)
			waitValue(t, reg, 1, "alerts_dropped_total", f.name(), "reason", DropRejected)
			m.Send(testAlert("n", "2"), nil)
			waitValue(t, reg, 2, "alerts_dropped_total", f.name(), "reason", DropRejected)
			if got, want := requestValues(f.seen(), "n"), [][]string{{"1"}, {"2"}}; !slices.EqualFunc(got, want, slices.Equal) {
				t.Errorf("requests carried %v, want %v", got, want)
			}
			if v := value(t, reg, "requests_total", f.name(), "outcome", "rejected"); v != 2 {
				t.Errorf(`requests_total{outcome="rejected"} = %v, want 2`, v)
			}
			if v := value(t, reg, "requests_total", f.name(), "outcome", "retryable_error"); v != 0 {
				t.Errorf(`requests_total{outcome="retryable_error"} = %v, want 0`, v)
			}
			if v := value(t, reg, "alerts_sent_total", f.name()); v != 0 {
				t.Errorf("alerts_sent_total = %v, want 0", v)
			}
			waitValue(t, reg, 0, "queue_length", f.name())
		})
	}
}

// TestRejectedBatch sends a batch of three alerts, one of them bad, to an
// Alertmanager that rejects any batch holding the bad one.
func TestRejectedBatch(t *testing.T) {
	t.Parallel()
	isBad := func(a *models.PostableAlert) bool { return a.Labels["bad"] == "yes" }
	rejectBad := func(code int) respondFunc {
		return func(_ http.ResponseWriter, _ *http.Request, _ int, alerts models.PostableAlerts) int {
			if slices.ContainsFunc(alerts, isBad) {
				return code
			}
			return http.StatusOK
		}
	}
	for _, tc := range []struct {
		name string
		code int
		// partial: Alertmanager stored the valid alerts of the batch.
		partial bool
		// wantRequests are the alerts of each request, by label n.
		wantRequests [][]string
		wantRejected float64
	}{
		{
			// A 400 may be a partial success: the alerts are resent
			// one by one to find the bad one.
			name: "400 bad labels", code: http.StatusBadRequest, partial: true,
			wantRequests: [][]string{{"blocker"}, {"good1", "bad", "good2"}, {"good1"}, {"bad"}, {"good2"}, {"after"}},
			wantRejected: 1,
		},
		{
			// A 422 refused the whole batch: resending one by one
			// saves the good alerts.
			name: "422 schema error", code: http.StatusUnprocessableEntity,
			wantRequests: [][]string{{"blocker"}, {"good1", "bad", "good2"}, {"good1"}, {"bad"}, {"good2"}, {"after"}},
			wantRejected: 1,
		},
		{
			// Another 4xx says nothing about single alerts: the
			// whole batch is dropped.
			name: "409", code: http.StatusConflict,
			wantRequests: [][]string{{"blocker"}, {"good1", "bad", "good2"}, {"after"}},
			wantRejected: 3,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gate := make(chan struct{})
			f := newFakeAM(t, gated(gate, rejectBad(tc.code)))
			if tc.partial {
				f.partial = func(a *models.PostableAlert) bool { return !isBad(a) }
			}
			opts := testOptions() // one request at a time: the order of the requests is the test's
			m, reg := newTestManager(t, opts, nil, f.base())
			// The blocker holds the sender in a request while the
			// three queue up, so that they go out as one batch.
			acks := map[string]*countingAck{"good1": {}, "bad": {}, "good2": {}}
			m.Send(testAlert("n", "blocker"), nil)
			f.waitRequests(t, 1)
			m.Send(testAlert("n", "good1"), acks["good1"])
			m.Send(testAlert("n", "bad", "bad", "yes"), acks["bad"])
			m.Send(testAlert("n", "good2"), acks["good2"])
			close(gate)

			waitValue(t, reg, tc.wantRejected, "alerts_dropped_total", f.name(), "reason", DropRejected)
			// Nothing is retried: the next alert's request follows.
			m.Send(testAlert("n", "after"), nil)
			eventually(t, "the alert sent after the batch to be stored", func() error {
				if !slices.Contains(f.storedValues("n"), "after") {
					return fmt.Errorf("stored %v", f.storedValues("n"))
				}
				return nil
			})
			if got := requestValues(f.seen(), "n"); !slices.EqualFunc(got, tc.wantRequests, slices.Equal) {
				t.Errorf("requests carried %v, want %v", got, tc.wantRequests)
			}
			stored := f.storedValues("n")
			if slices.Contains(stored, "bad") {
				t.Errorf("the bad alert was stored: %v", stored)
			}
			wantSent := 5 - tc.wantRejected // blocker, good1, good2, after
			if tc.code != http.StatusConflict {
				for _, n := range []string{"good1", "good2"} {
					if !slices.Contains(stored, n) {
						t.Errorf("%s was not delivered; stored %v", n, stored)
					}
				}
			}
			waitValue(t, reg, wantSent, "alerts_sent_total", f.name())
			if v := value(t, reg, "requests_total", f.name(), "outcome", "retryable_error"); v != 0 {
				t.Errorf(`requests_total{outcome="retryable_error"} = %v, want 0`, v)
			}
			if v := value(t, reg, "alerts_dropped_total", f.name(), "reason", DropRejected); v != tc.wantRejected {
				t.Errorf(`alerts_dropped_total{reason="rejected"} = %v, want %v`, v, tc.wantRejected)
			}
			for n, a := range acks {
				checkAck(t, n, a, 1, 1)
			}
		})
	}
}

// TestRejectedBatchSkipsExpired: an alert that expired while its batch
// was being rejected is not sent alone afterwards.
func TestRejectedBatchSkipsExpired(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	gate1, gate2 := make(chan struct{}), make(chan struct{})
	f := newFakeAM(t, gated(gate1, func(_ http.ResponseWriter, r *http.Request, n int, alerts models.PostableAlerts) int {
		if n == 2 {
			select {
			case <-gate2:
			case <-r.Context().Done():
			}
		}
		if slices.ContainsFunc(alerts, func(a *models.PostableAlert) bool { return a.Labels["bad"] == "yes" }) {
			return http.StatusBadRequest
		}
		return http.StatusOK
	}))
	opts := testOptions()
	opts.Now = clock.Now
	m, reg := newTestManager(t, opts, nil, f.base())
	now := clock.Now()
	m.Send(testAlert("n", "blocker"), nil)
	f.waitRequests(t, 1)
	soon := testAlert("n", "soon")
	soon.EndsAt = now.Add(time.Minute)
	m.Send(testAlert("n", "good"), nil)
	m.Send(soon, nil)
	m.Send(testAlert("n", "bad", "bad", "yes"), nil)
	close(gate1)
	f.waitRequests(t, 2)
	clock.Add(2 * time.Minute) // soon expires while the batch is being sent
	close(gate2)

	waitValue(t, reg, 1, "alerts_dropped_total", f.name(), "reason", DropRejected)
	waitValue(t, reg, 1, "alerts_dropped_total", f.name(), "reason", DropExpired)
	waitValue(t, reg, 2, "alerts_sent_total", f.name())
	want := [][]string{{"blocker"}, {"good", "soon", "bad"}, {"good"}, {"bad"}}
	if got := requestValues(f.seen(), "n"); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("requests carried %v, want %v", got, want)
	}
}

func TestExpiredAlertsAreNotSent(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	gate := make(chan struct{})
	f := newFakeAM(t, gated(gate, status(http.StatusOK)))
	opts := testOptions()
	opts.Now = clock.Now
	m, reg := newTestManager(t, opts, nil, f.base())

	withEnd := func(n string, end time.Time) *alert.Alert {
		a := testAlert("n", n)
		a.EndsAt = end
		return a
	}
	now := clock.Now()
	m.Send(withEnd("blocker", now.Add(time.Hour)), nil)
	f.waitRequests(t, 1)
	acks := map[string]*countingAck{"past": {}, "soon": {}, "fresh": {}}
	m.Send(withEnd("past", now.Add(-time.Second)), acks["past"]) // resolved before it was queued
	m.Send(withEnd("soon", now.Add(time.Minute)), acks["soon"])  // resolves while it waits
	m.Send(withEnd("fresh", now.Add(time.Hour)), acks["fresh"])
	clock.Add(2 * time.Minute)
	close(gate)

	f.waitStored(t, "n", "blocker", "fresh")
	waitValue(t, reg, 2, "alerts_sent_total", f.name())
	waitValue(t, reg, 2, "alerts_dropped_total", f.name(), "reason", DropExpired)
	if got, want := requestValues(f.seen(), "n"), [][]string{{"blocker"}, {"fresh"}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("requests carried %v, want %v", got, want)
	}
	for n, a := range acks {
		checkAck(t, n, a, 1, 1)
	}
}

func TestMergedAlertsOnTheWire(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	f := newFakeAM(t, gated(gate, status(http.StatusOK)))
	m, reg := newTestManager(t, testOptions(), nil, f.base())
	m.Send(testAlert("n", "blocker"), nil)
	f.waitRequests(t, 1)

	t0 := time.Now().Truncate(time.Millisecond)
	for i, d := range []struct{ start, end time.Duration }{
		{0, time.Hour},
		{-time.Minute, 2 * time.Hour}, // earliest start, latest end
		{time.Minute, 90 * time.Minute},
	} {
		m.Send(&alert.Alert{
			Labels:      labelSet("n", "storm"),
			Annotations: model.LabelSet{"event": model.LabelValue(strconv.Itoa(i))},
			StartsAt:    t0.Add(d.start),
			EndsAt:      t0.Add(d.end),
		}, nil)
	}
	m.Send(testAlert("n", "other"), nil)
	close(gate)

	f.waitStored(t, "n", "blocker", "storm", "other")
	waitValue(t, reg, 3, "alerts_sent_total", f.name())
	if v := value(t, reg, "alerts_merged_total", f.name()); v != 2 {
		t.Errorf("alerts_merged_total = %v, want 2", v)
	}
	reqs := f.seen()
	if len(reqs) != 2 || len(reqs[1].alerts) != 2 {
		t.Fatalf("requests carried %v, want [[blocker] [storm other]]", requestValues(reqs, "n"))
	}
	storm, other := reqs[1].alerts[0], reqs[1].alerts[1]
	if got := storm.Annotations[alert.MergedAnnotation]; got != "3" {
		t.Errorf("%s = %q, want 3", alert.MergedAnnotation, got)
	}
	if got := storm.Annotations["event"]; got != "2" {
		t.Errorf("event annotation = %q, want the newest, 2", got)
	}
	if got, want := time.Time(storm.StartsAt), t0.Add(-time.Minute); !got.Equal(want) {
		t.Errorf("startsAt = %v, want the earliest %v", got, want)
	}
	if got, want := time.Time(storm.EndsAt), t0.Add(2*time.Hour); !got.Equal(want) {
		t.Errorf("endsAt = %v, want the latest %v", got, want)
	}
	if _, ok := other.Annotations[alert.MergedAnnotation]; ok {
		t.Errorf("an alert that was not merged carries %s", alert.MergedAnnotation)
	}
}

// TestQueueOverflowWhileDown is the acceptance scenario: an Alertmanager
// is down while 1000 alerts come for a queue of 100; when it is back it
// gets the newest 100, and the 900 others are counted as dropped.
func TestQueueOverflowWhileDown(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		down respondFunc
	}{
		{"503", status(http.StatusServiceUnavailable)},
		{"connection dropped", dropConnection()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var up atomic.Bool
			f := newFakeAM(t, switchable(&up, tc.down))
			opts := testOptions()
			opts.QueueCapacity = 100
			m, reg := newTestManager(t, opts, nil, f.base())
			for i := range 1000 {
				m.Send(testAlert("n", strconv.Itoa(i)), nil)
			}
			// Alerts evicted while in a failing request are counted
			// once that request is over: wait for all of them, so that
			// only the newest 100 are left when the Alertmanager is
			// back.
			waitValue(t, reg, 900, "alerts_dropped_total", f.name(), "reason", DropQueueFull)
			if err := m.Ready(); err == nil {
				t.Error("Ready() = nil with a full queue")
			}
			up.Store(true)

			var want []string
			for i := 900; i < 1000; i++ {
				want = append(want, strconv.Itoa(i))
			}
			f.waitStored(t, "n", want...)
			waitValue(t, reg, 100, "alerts_sent_total", f.name())
			waitValue(t, reg, 0, "queue_length", f.name())
			if v := value(t, reg, "alerts_dropped_total", f.name(), "reason", DropQueueFull); v != 900 {
				t.Errorf(`alerts_dropped_total{reason="queue_full"} = %v, want 900`, v)
			}
			for _, reason := range []string{DropExpired, DropRejected, DropShutdown, DropTargetRemoved} {
				if v := value(t, reg, "alerts_dropped_total", f.name(), "reason", reason); v != 0 {
					t.Errorf("alerts_dropped_total{reason=%q} = %v, want 0", reason, v)
				}
			}
			if err := m.Ready(); err != nil {
				t.Errorf("Ready() = %v once the queue is empty", err)
			}
		})
	}
}

func TestCloseDeliversQueued(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	f := newFakeAM(t, gated(gate, status(http.StatusOK)))
	m, reg := newTestManager(t, testOptions(), nil, f.base())
	m.Send(testAlert("n", "0"), nil)
	f.waitRequests(t, 1)
	for _, n := range []string{"1", "2", "3"} {
		m.Send(testAlert("n", n), nil)
	}

	type result struct{ undelivered int }
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		done <- result{m.Close(ctx, false)}
	}()
	eventually(t, "Close to start", func() error {
		if err := m.Ready(); err == nil || !strings.Contains(err.Error(), "shutting down") {
			return fmt.Errorf("Ready() = %w", err)
		}
		return nil
	})
	close(gate)
	var r result
	select {
	case r = <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Close did not return")
	}
	if r.undelivered != 0 {
		t.Errorf("Close = %d undelivered, want 0", r.undelivered)
	}
	if got := slices.Sorted(slices.Values(f.storedValues("n"))); !slices.Equal(got, []string{"0", "1", "2", "3"}) {
		t.Errorf("stored %v, want [0 1 2 3]", got)
	}
	if v := value(t, reg, "alerts_dropped_total", f.name(), "reason", DropShutdown); v != 0 {
		t.Errorf(`alerts_dropped_total{reason="shutdown"} = %v, want 0`, v)
	}
	if n, err := m.Send(testAlert("n", "late"), nil); n != 0 || !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %d queues, %v; want 0, ErrClosed", n, err)
	}
	if n := m.Close(context.Background(), false); n != 0 {
		t.Errorf("second Close = %d, want 0", n)
	}
}

func TestCloseWhileDown(t *testing.T) {
	t.Parallel()
	for _, mode := range downModes {
		for _, keep := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s keep=%v", mode.name, keep), func(t *testing.T) {
				t.Parallel()
				target := mode.target(t)
				opts := testOptions()
				opts.Timeout = time.Minute
				m, reg := newTestManager(t, opts, nil, target)
				acks := []*countingAck{{}, {}, {}}
				for i, a := range acks {
					m.Send(testAlert("n", strconv.Itoa(i)), a)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				defer cancel()
				undelivered, took := closeWithin(ctx, t, m, keep)
				if undelivered != 3 {
					t.Errorf("Close = %d undelivered, want 3", undelivered)
				}
				if took < 250*time.Millisecond {
					t.Errorf("Close returned after %v, before its context ended", took)
				}
				wantDropped, wantDone := 3.0, 1
				if keep {
					wantDropped, wantDone = 0, 0
				}
				if v := value(t, reg, "alerts_dropped_total", target.String(), "reason", DropShutdown); v != wantDropped {
					t.Errorf(`alerts_dropped_total{reason="shutdown"} = %v, want %v`, v, wantDropped)
				}
				if v := value(t, reg, "alerts_sent_total", target.String()); v != 0 {
					t.Errorf("alerts_sent_total = %v, want 0", v)
				}
				if v := value(t, reg, "queue_length", target.String()); v != 0 {
					t.Errorf("queue_length = %v after Close, want 0", v)
				}
				for i, a := range acks {
					checkAck(t, strconv.Itoa(i), a, 1, wantDone)
				}
				if err := m.Ready(); err == nil {
					t.Error("Ready() = nil after Close")
				}
			})
		}
	}
}

func TestAckDoneOncePerQueue(t *testing.T) {
	t.Parallel()
	t.Run("both up", func(t *testing.T) {
		t.Parallel()
		a, b := newFakeAM(t, status(http.StatusOK)), newFakeAM(t, status(http.StatusOK))
		m, _ := newTestManager(t, testOptions(), nil, a.base(), b.base())
		acks := []*countingAck{{}, {}, {}}
		for i, ack := range acks {
			if n, err := m.Send(testAlert("n", strconv.Itoa(i)), ack); n != 2 || err != nil {
				t.Fatalf("Send = %d queues, %v; want 2", n, err)
			}
		}
		a.waitStored(t, "n", "0", "1", "2")
		b.waitStored(t, "n", "0", "1", "2")
		closeWithin(context.Background(), t, m, true)
		for i, ack := range acks {
			checkAck(t, strconv.Itoa(i), ack, 2, 2)
		}
	})
	t.Run("one down, keep", func(t *testing.T) {
		t.Parallel()
		up, down := newFakeAM(t, status(http.StatusOK)), newFakeAM(t, status(http.StatusServiceUnavailable))
		m, reg := newTestManager(t, testOptions(), nil, up.base(), down.base())
		acks := []*countingAck{{}, {}, {}}
		for i, ack := range acks {
			m.Send(testAlert("n", strconv.Itoa(i)), ack)
		}
		up.waitStored(t, "n", "0", "1", "2")
		waitValue(t, reg, 3, "alerts_sent_total", up.name())
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if n, _ := closeWithin(ctx, t, m, true); n != 3 {
			t.Errorf("Close = %d undelivered, want 3", n)
		}
		for i, ack := range acks {
			// Done by the queue that delivered it, held by the other.
			checkAck(t, strconv.Itoa(i), ack, 2, 1)
		}
	})
}

func TestSetTargetsRemovesTarget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		respond func() respondFunc
	}{
		{"503", func() respondFunc { return status(http.StatusServiceUnavailable) }},
		// Removed in the middle of a request.
		{"hangs", hang},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			keep := newFakeAM(t, status(http.StatusOK))
			gone := newFakeAM(t, tc.respond())
			logs := &lockedBuffer{}
			opts := testOptions()
			opts.Timeout = time.Minute
			m, reg := newTestManager(t, opts, slog.New(slog.NewTextHandler(logs, nil)), keep.base(), gone.base())
			acks := []*countingAck{{}, {}, {}}
			for i, a := range acks {
				m.Send(testAlert("n", strconv.Itoa(i)), a)
			}
			keep.waitStored(t, "n", "0", "1", "2")
			// Counted once the sender has read the answer and called
			// the acks; the fake stores before it answers.
			waitValue(t, reg, 3, "alerts_sent_total", keep.name())
			gone.waitRequests(t, 1)
			s := senderOf(t, m, gone.name())

			m.SetTargets([]*url.URL{keep.base()})
			if got := m.Targets(); !slices.Equal(got, []string{keep.name()}) {
				t.Errorf("Targets() = %v, want [%s]", got, keep.name())
			}
			// SetTargets returns once the removed sender has stopped.
			waitClosed(t, "the sender of the removed Alertmanager to stop", s.stopped)
			// Its series go; what became of its alerts is counted
			// without its label.
			if v, _ := metricValue(t, reg, metricPrefix+"removed_target_dropped_alerts_total", nil); v != 3 {
				t.Errorf("removed_target_dropped_alerts_total = %v, want 3", v)
			}
			for _, series := range seriesOf(t, reg, gone.name()) {
				t.Errorf("series of the removed Alertmanager kept: %s", series)
			}
			for i, a := range acks {
				// Delivered by one queue, dropped by the other.
				checkAck(t, strconv.Itoa(i), a, 2, 2)
			}
			var line string
			for l := range strings.SplitSeq(logs.String(), "\n") {
				if strings.Contains(l, `msg="alerts dropped"`) && strings.Contains(l, "alertmanager="+gone.name()) {
					line = l
				}
			}
			if !strings.Contains(line, DropTargetRemoved+"=3") {
				t.Errorf("no log line counting 3 alerts dropped as %s; the logs:\n%s", DropTargetRemoved, logs)
			}
			if v, _ := metricValue(t, reg, metricPrefix+"targets", nil); v != 1 {
				t.Errorf("targets = %v, want 1", v)
			}
			if n, _ := m.Send(testAlert("n", "3"), nil); n != 1 {
				t.Errorf("Send = %d queues after the removal, want 1", n)
			}
			keep.waitStored(t, "n", "0", "1", "2", "3")
		})
	}
}

func TestSetTargetsKeepsQueues(t *testing.T) {
	t.Parallel()
	var up atomic.Bool
	old := newFakeAM(t, switchable(&up, status(http.StatusServiceUnavailable)))
	added := newFakeAM(t, status(http.StatusOK))
	m, reg := newTestManager(t, testOptions(), nil, old.base())
	for _, n := range []string{"0", "1", "2"} {
		m.Send(testAlert("n", n), nil)
	}
	old.waitRequests(t, 1)
	s := senderOf(t, m, old.name())
	m.SetTargets([]*url.URL{added.base(), old.base()})
	if got := senderOf(t, m, old.name()); got != s {
		t.Fatal("SetTargets replaced the sender of an Alertmanager that stays")
	}
	up.Store(true)
	old.waitStored(t, "n", "0", "1", "2")
	m.Send(testAlert("n", "3"), nil)
	old.waitStored(t, "n", "0", "1", "2", "3")
	added.waitStored(t, "n", "3")
	waitValue(t, reg, 4, "alerts_sent_total", old.name())
	waitValue(t, reg, 1, "alerts_sent_total", added.name())
}

func TestReady(t *testing.T) {
	t.Parallel()
	var up atomic.Bool
	healthy := newFakeAM(t, status(http.StatusOK))
	down := newFakeAM(t, switchable(&up, status(http.StatusServiceUnavailable)))
	opts := testOptions()
	opts.QueueCapacity = 2
	m, reg := newTestManager(t, opts, nil, healthy.base(), down.base())
	if err := m.Ready(); err != nil {
		t.Fatalf("Ready() = %v with empty queues", err)
	}
	m.Send(testAlert("n", "0"), nil)
	m.Send(testAlert("n", "1"), nil)
	healthy.waitStored(t, "n", "0", "1")
	// Out of the healthy queue once counted, not when the fake has them.
	waitValue(t, reg, 2, "alerts_sent_total", healthy.name())
	err := m.Ready()
	if err == nil {
		t.Fatal("Ready() = nil with a full queue")
	}
	if !strings.Contains(err.Error(), down.name()) || !strings.Contains(err.Error(), "full") {
		t.Errorf("Ready() = %q, want it to name %s and say its queue is full", err, down.name())
	}
	up.Store(true)
	down.waitStored(t, "n", "0", "1")
	eventually(t, "Ready() to be nil", func() error { return m.Ready() })
}

func TestSendAllKeepsARequestInOneBatch(t *testing.T) {
	t.Parallel()
	f1, f2 := newFakeAM(t, status(http.StatusOK)), newFakeAM(t, status(http.StatusOK))
	opts := testOptions() // BatchWait 0: a sender posts as soon as it sees an alert
	m, reg := newTestManager(t, opts, nil, f1.base(), f2.base())
	ack := &countingAck{}
	alerts := []*alert.Alert{testAlert("n", "1"), testAlert("n", "2"), testAlert("n", "1"), testAlert("n", "3")}
	if q, err := m.SendAll(encodeAll(alerts), ack); q != 2 || err != nil {
		t.Fatalf("SendAll = %d queues, %v; want 2", q, err)
	}
	for _, f := range []*fakeAM{f1, f2} {
		f.waitStored(t, "n", "1", "2", "3")
		reqs := f.seen()
		if len(reqs) != 1 {
			t.Fatalf("%s: %d requests, want 1 with all the alerts", f.name(), len(reqs))
		}
		if got := requestValues(reqs, "n")[0]; !slices.Equal(got, []string{"1", "2", "3"}) {
			t.Errorf("%s: batch holds %v, want [1 2 3] (the second 1 merged)", f.name(), got)
		}
		if v := value(t, reg, "alerts_merged_total", f.name()); v != 1 {
			t.Errorf("%s: merged_total %v, want 1", f.name(), v)
		}
	}
	eventually(t, "every hold let go", func() error {
		if got := ack.count(); got != 8 {
			return fmt.Errorf("Done called %d times", got)
		}
		return nil
	})
	checkAck(t, "the request", ack, 8, 8)
}

func TestHoldsAlertsUntilAnAlertmanagerIsKnown(t *testing.T) {
	t.Parallel()
	opts := testOptions()
	opts.QueueCapacity = 3
	m, reg := newTestManager(t, opts, nil) // no target yet: a DNS name not resolved
	acks := []*countingAck{{}, {}, {}, {}}
	for i, a := range acks {
		if n, err := m.Send(testAlert("n", strconv.Itoa(i)), a); n != 0 || err != nil {
			t.Fatalf("Send with no Alertmanager = %d queues, %v; want 0, nil", n, err)
		}
	}
	// Capacity 3: the oldest of the four made room.
	if v := value(t, reg, "queue_length", PendingQueue); v != 3 {
		t.Errorf("queue_length{alertmanager=%q} = %v, want 3", PendingQueue, v)
	}
	if v := value(t, reg, "alerts_dropped_total", PendingQueue, "reason", DropQueueFull); v != 1 {
		t.Errorf("alerts_dropped_total{alertmanager=%q,reason=queue_full} = %v, want 1", PendingQueue, v)
	}
	checkAck(t, "0", acks[0], 1, 1)
	if err := m.Ready(); err == nil {
		t.Error("Ready with the holding queue full = nil, want an error")
	}

	a, b := newFakeAM(t, status(http.StatusOK)), newFakeAM(t, status(http.StatusOK))
	m.SetTargets([]*url.URL{a.base(), b.base()})
	for _, f := range []*fakeAM{a, b} {
		f.waitStored(t, "n", "1", "2", "3")
		waitValue(t, reg, 3, "alerts_sent_total", f.name())
	}
	if v := value(t, reg, "queue_length", PendingQueue); v != 0 {
		t.Errorf("queue_length{alertmanager=%q} = %v after the hand-over, want 0", PendingQueue, v)
	}
	if err := m.Ready(); err != nil {
		t.Errorf("Ready = %v, want nil", err)
	}
	for i, ack := range acks[1:] {
		// Held by the holding queue, then by each of the two queues.
		checkAck(t, strconv.Itoa(i+1), ack, 3, 3)
	}
	if n, _ := m.Send(testAlert("n", "4"), nil); n != 2 {
		t.Errorf("Send = %d queues once Alertmanagers are known, want 2", n)
	}
}

func TestCloseCountsHeldAlerts(t *testing.T) {
	t.Parallel()
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprint("keep=", keep), func(t *testing.T) {
			t.Parallel()
			m, reg := newTestManager(t, testOptions(), nil)
			ack := &countingAck{}
			m.SendAll(encodeAll([]*alert.Alert{testAlert("n", "0"), testAlert("n", "1")}), ack)
			if n := m.Close(context.Background(), keep); n != 2 {
				t.Errorf("Close = %d undelivered, want 2", n)
			}
			want, done := 2.0, 2
			if keep {
				want, done = 0, 0 // left for durable storage to replay
			}
			if v := value(t, reg, "alerts_dropped_total", PendingQueue, "reason", DropShutdown); v != want {
				t.Errorf("alerts_dropped_total{reason=shutdown} = %v, want %v", v, want)
			}
			checkAck(t, "the request", ack, 2, done)
		})
	}
}

func TestReplacedAlertmanagerHandsOverItsQueue(t *testing.T) {
	t.Parallel()
	// An Alertmanager pod restarts with a new address: what the old
	// address had not delivered goes to the new one.
	gone := newFakeAM(t, status(http.StatusServiceUnavailable))
	stays := newFakeAM(t, status(http.StatusOK))
	fresh := newFakeAM(t, status(http.StatusOK))
	m, reg := newTestManager(t, testOptions(), nil, gone.base(), stays.base())
	acks := []*countingAck{{}, {}, {}}
	for i, a := range acks {
		m.Send(testAlert("n", strconv.Itoa(i)), a)
	}
	stays.waitStored(t, "n", "0", "1", "2")
	gone.waitRequests(t, 1)

	m.SetTargets([]*url.URL{fresh.base(), stays.base()})
	fresh.waitStored(t, "n", "0", "1", "2")
	waitValue(t, reg, 3, "alerts_sent_total", fresh.name())
	if v, _ := metricValue(t, reg, metricPrefix+"removed_target_dropped_alerts_total", nil); v != 0 {
		t.Errorf("removed_target_dropped_alerts_total = %v, want 0: the new address took them", v)
	}
	var got []string
	for _, vs := range requestValues(stays.seen(), "n") {
		got = append(got, vs...)
	}
	if slices.Sort(got); !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Errorf("the Alertmanager that stayed was sent %v, want [0 1 2] once each: nothing is handed to it", got)
	}
	for i, a := range acks {
		// Two queues at first, then the new one for the old one's copy.
		checkAck(t, strconv.Itoa(i), a, 3, 3)
	}
}

// TestTwoVersionsNeverInFlight: with two requests in flight, a newer
// version of an alert still in flight waits for that request to end, while
// other alerts go out beside it.
func TestTwoVersionsNeverInFlight(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	f := newFakeAM(t, gated(gate, status(http.StatusOK)))
	opts := testOptions()
	opts.MaxRequestsInFlight = 2
	m, _ := newTestManager(t, opts, nil, f.base())
	m.Send(testAlert("n", "x"), nil)
	f.waitRequests(t, 1) // x's first version, held
	newer := testAlert("n", "x")
	newer.Annotations = model.LabelSet{"summary": "newer"}
	m.Send(newer, nil)
	m.Send(testAlert("n", "y"), nil)
	f.waitRequests(t, 2) // y goes out beside the held request; x waits
	if got := requestValues(f.seen()[1:], "n"); !slices.EqualFunc(got, [][]string{{"y"}}, slices.Equal) {
		t.Fatalf("with x in flight, the second request carried %v, want [y]", got)
	}
	close(gate)
	f.waitRequests(t, 3)
	reqs := f.seen()
	if got := requestValues(reqs, "n"); !slices.EqualFunc(got, [][]string{{"x"}, {"y"}, {"x"}}, slices.Equal) {
		t.Fatalf("requests carried %v, want [[x] [y] [x]]", got)
	}
	if s := reqs[2].alerts[0].Annotations["summary"]; s != "newer" {
		t.Errorf("the third request carried x's summary %q, want the newer version", s)
	}
}
