package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
)

// waitTimeout bounds every wait for a condition: generous, so that a slow
// machine under -race does not make a test flaky, while a test that
// waits for something that never happens still ends.
const waitTimeout = 10 * time.Second

// eventually polls cond until it returns nil and fails the test with
// cond's last error when waitTimeout passes first.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %v", waitTimeout, what, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitClosed waits for ch to be closed.
func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
	}
}

// testAlert returns a firing alert with the given label pairs, valid for
// an hour.
func testAlert(pairs ...string) *alert.Alert {
	now := time.Now()
	return &alert.Alert{
		Labels:      labelSet(pairs...),
		Annotations: model.LabelSet{"summary": "test"},
		StartsAt:    now.Add(-time.Minute),
		EndsAt:      now.Add(time.Hour),
	}
}

func labelSet(pairs ...string) model.LabelSet {
	if len(pairs)%2 != 0 {
		panic("labelSet needs name/value pairs")
	}
	ls := make(model.LabelSet, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		ls[model.LabelName(pairs[i])] = model.LabelValue(pairs[i+1])
	}
	return ls
}

// countingAck counts its Done calls (and its Add calls apart).
type countingAck struct{ n, added atomic.Int32 }

func (a *countingAck) Add(n int) { a.added.Add(int32(n)) }

func (a *countingAck) Done() { a.n.Add(1) }

func (a *countingAck) count() int { return int(a.n.Load()) }

// checkAck checks that an alert sent to queues queues was held once per
// queue (Add) and let go done times (Done).
func checkAck(t *testing.T, name string, a *countingAck, queues, done int) {
	t.Helper()
	if got := int(a.added.Load()); got != queues {
		t.Errorf("ack of %s: Add counted %d, want %d (one per queue)", name, got, queues)
	}
	if got := a.count(); got != done {
		t.Errorf("ack of %s: Done called %d times, want %d", name, got, done)
	}
}

// fakeClock is a settable Options.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// lockedBuffer is an io.Writer for a slog handler that tests read while
// senders log.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fakeRequest is one request a fakeAM saw.
type fakeRequest struct {
	at          time.Time
	method      string
	path        string
	contentType string
	body        []byte
	alerts      models.PostableAlerts
	status      int
}

// respondFunc decides the answer of a fakeAM to its n-th request (from 1).
// It may set headers on w and block; it returns the status code.
type respondFunc func(w http.ResponseWriter, r *http.Request, n int, alerts models.PostableAlerts) int

// fakeAM is an Alertmanager's POST /api/v2/alerts. It answers 415 to a
// non-JSON content type and 422 to a body that is not an array of alerts
// each with a labels object, as Alertmanager does; otherwise respond
// decides. It records every request and, like Alertmanager, stores the
// alerts of a request answered 2xx, or the valid ones of a 400 when
// partial is set.
type fakeAM struct {
	srv     *httptest.Server
	respond respondFunc
	// partial says which alerts a 400 still stored: Alertmanager rejects
	// only the alerts with bad labels and keeps the others.
	partial func(*models.PostableAlert) bool

	mu       sync.Mutex
	requests []*fakeRequest
	stored   []*models.PostableAlert
}

func newFakeAM(t *testing.T, respond respondFunc) *fakeAM {
	t.Helper()
	f := &fakeAM{respond: respond}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serveHTTP))
	t.Cleanup(f.srv.Close)
	return f
}

// status returns a respondFunc that always answers code.
func status(code int) respondFunc {
	return func(http.ResponseWriter, *http.Request, int, models.PostableAlerts) int { return code }
}

// hang returns a respondFunc that never answers: it holds each request
// until the client gives up.
func hang() respondFunc {
	return func(_ http.ResponseWriter, r *http.Request, _ int, _ models.PostableAlerts) int {
		<-r.Context().Done()
		return http.StatusServiceUnavailable
	}
}

// dropConnection returns a respondFunc that closes the connection without
// an answer: a network error for the client.
func dropConnection() respondFunc {
	return func(w http.ResponseWriter, _ *http.Request, _ int, _ models.PostableAlerts) int {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		_ = conn.Close()
		return 0
	}
}

// switchable answers like down until up is set, then 200.
func switchable(up *atomic.Bool, down respondFunc) respondFunc {
	return func(w http.ResponseWriter, r *http.Request, n int, alerts models.PostableAlerts) int {
		if up.Load() {
			return http.StatusOK
		}
		return down(w, r, n, alerts)
	}
}

// downModes are the ways an Alertmanager can be unavailable.
var downModes = []struct {
	name string
	// target returns the base URL of an Alertmanager that is down.
	target func(t *testing.T) *url.URL
}{
	{"503", func(t *testing.T) *url.URL { return newFakeAM(t, status(http.StatusServiceUnavailable)).base() }},
	{"connection dropped", func(t *testing.T) *url.URL { return newFakeAM(t, dropConnection()).base() }},
	{"connection refused", closedURL},
	{"hangs", func(t *testing.T) *url.URL { return newFakeAM(t, hang()).base() }},
}

// gated returns a respondFunc that holds the first request until gate is
// closed (or the client gives up), then answers 200 to it and to all
// others. Tests use it to let alerts pile up in a queue while a request
// is in flight, so that they go out together in the next batch.
func gated(gate <-chan struct{}, then respondFunc) respondFunc {
	return func(w http.ResponseWriter, r *http.Request, n int, alerts models.PostableAlerts) int {
		if n == 1 {
			select {
			case <-gate:
			case <-r.Context().Done():
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		}
		return then(w, r, n, alerts)
	}
}

func (f *fakeAM) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := &fakeRequest{
		at:          time.Now(),
		method:      r.Method,
		path:        r.URL.Path,
		contentType: r.Header.Get("Content-Type"),
		body:        body,
	}
	f.mu.Lock()
	f.requests = append(f.requests, req)
	n := len(f.requests)
	f.mu.Unlock()

	var code int
	var alerts models.PostableAlerts
	switch {
	case req.contentType != "application/json":
		code = http.StatusUnsupportedMediaType
	case validWire(body) != nil:
		code = http.StatusUnprocessableEntity
	default:
		if err := json.Unmarshal(body, &alerts); err != nil {
			code = http.StatusUnprocessableEntity
			break
		}
		code = f.respond(w, r, n, alerts)
	}

	f.mu.Lock()
	req.alerts = alerts
	req.status = code
	for _, a := range alerts {
		if code/100 == 2 || (code == http.StatusBadRequest && f.partial != nil && f.partial(a)) {
			f.stored = append(f.stored, a)
		}
	}
	f.mu.Unlock()
	if code != 0 { // 0: respond hijacked the connection
		w.WriteHeader(code)
	}
}

// validWire checks what Alertmanager's schema validation checks first: an
// array of objects that each have a labels object (null or missing labels
// fail the whole batch with 422).
func validWire(body []byte) error {
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return err
	}
	for i, a := range raw {
		l, ok := a["labels"]
		if !ok || !bytes.HasPrefix(bytes.TrimSpace(l), []byte("{")) {
			return fmt.Errorf("alert %d: labels missing or not an object: %s", i, l)
		}
	}
	return nil
}

// base returns the fake's base URL.
func (f *fakeAM) base() *url.URL {
	u, err := url.Parse(f.srv.URL)
	if err != nil {
		panic(err)
	}
	return u
}

// name is how the Manager names the fake in metrics and errors.
func (f *fakeAM) name() string { return f.base().String() }

func (f *fakeAM) seen() []*fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*fakeRequest, len(f.requests))
	for i, r := range f.requests {
		c := *r
		out[i] = &c
	}
	return out
}

// storedValues returns the value of label name of each stored alert, in
// the order they were stored.
func (f *fakeAM) storedValues(name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.stored))
	for _, a := range f.stored {
		out = append(out, a.Labels[name])
	}
	return out
}

// waitStored waits until the fake stored alerts whose label name has
// exactly the values want (in any order, duplicates counted).
func (f *fakeAM) waitStored(t *testing.T, name string, want ...string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	eventually(t, fmt.Sprintf("%s to store alerts with %s=%v", f.name(), name, want), func() error {
		got := slices.Sorted(slices.Values(f.storedValues(name)))
		if !slices.Equal(got, want) {
			return fmt.Errorf("stored %s=%v", name, got)
		}
		return nil
	})
}

// requestValues returns, per request, the values of label name of its
// alerts.
func requestValues(reqs []*fakeRequest, name string) [][]string {
	out := make([][]string, len(reqs))
	for i, r := range reqs {
		out[i] = []string{}
		for _, a := range r.alerts {
			out[i] = append(out[i], a.Labels[name])
		}
	}
	return out
}

// testOptions are fast retries for tests, and no resend delay: the tests
// of it set their own.
func testOptions() Options {
	return Options{
		// One request at a time, so that a request held by gated holds
		// the sender and what is sent meanwhile waits for the next batch;
		// with two, the second batch would go as soon as batch_wait ends,
		// and whether it did before a test's next step would be timing.
		MaxRequestsInFlight: 1,
		MinBackoff:          10 * time.Millisecond,
		MaxBackoff:          50 * time.Millisecond,
		Timeout:             5 * time.Second,
		ResendDelay:         -1,
	}
}

// newTestManager returns a Manager sending to targets, with its own
// registry. It is closed at the end of the test without waiting for
// delivery.
func newTestManager(t *testing.T, opts Options, logger *slog.Logger, targets ...*url.URL) (*Manager, *prometheus.Registry) {
	t.Helper()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	m := mustManager(NewManager(opts, nil, logger, reg))
	m.SetTargets(targets)
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan struct{})
		go func() {
			m.Close(ctx, false)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Errorf("Close with a cancelled context did not return within %v", waitTimeout)
		}
	})
	return m, reg
}

// metricValue returns the value of the series of the metric name whose
// labels are exactly labels (a histogram's sample count), and whether
// that series exists.
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; !ok || v != lp.GetValue() {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

const metricPrefix = "falco_am_bridge_alertmanager_"

// value returns the value of a metric of the package for an Alertmanager,
// failing the test when the series does not exist. kv are further label
// pairs (reason, outcome).
func value(t *testing.T, reg prometheus.Gatherer, metric, am string, kv ...string) float64 {
	t.Helper()
	labels := map[string]string{"alertmanager": am}
	for i := 0; i+1 < len(kv); i += 2 {
		labels[kv[i]] = kv[i+1]
	}
	v, ok := metricValue(t, reg, metricPrefix+metric, labels)
	if !ok {
		t.Fatalf("no series %s%s%v", metricPrefix, metric, labels)
	}
	return v
}

// waitValue waits until a metric of the package has the value want.
func waitValue(t *testing.T, reg prometheus.Gatherer, want float64, metric, am string, kv ...string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s%s{alertmanager=%q %v} to be %v", metricPrefix, metric, am, kv, want), func() error {
		if got := value(t, reg, metric, am, kv...); got != want {
			return fmt.Errorf("it is %v", got)
		}
		return nil
	})
}

// seriesOf lists the series (metric name and labels) that carry the label
// alertmanager=am.
func seriesOf(t *testing.T, reg prometheus.Gatherer, am string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "alertmanager" && lp.GetValue() == am {
					var ls []string
					for _, l := range m.GetLabel() {
						ls = append(ls, l.GetName()+"="+l.GetValue())
					}
					out = append(out, mf.GetName()+"{"+strings.Join(ls, ",")+"}")
				}
			}
		}
	}
	return out
}

func mustManager(m *Manager, err error) *Manager {
	if err != nil {
		panic(err)
	}
	return m
}

func encodeAll(alerts []*alert.Alert) []*alert.Wire {
	out := make([]*alert.Wire, len(alerts))
	for i, a := range alerts {
		out[i] = alert.Encode(a)
	}
	return out
}

// sent decodes the alert as e goes on the wire.
func (e *entry) sent() *alert.Alert {
	var p models.PostableAlert
	if err := json.Unmarshal(e.encoded(), &p); err != nil {
		panic(err)
	}
	a := &alert.Alert{Labels: model.LabelSet{}, StartsAt: time.Time(p.StartsAt), EndsAt: time.Time(p.EndsAt), GeneratorURL: string(p.GeneratorURL), Resolve: e.w.Resolve}
	for k, v := range p.Labels {
		a.Labels[model.LabelName(k)] = model.LabelValue(v)
	}
	if len(p.Annotations) > 0 {
		a.Annotations = model.LabelSet{}
		for k, v := range p.Annotations {
			a.Annotations[model.LabelName(k)] = model.LabelValue(v)
		}
	}
	return a
}

func equalMaps(got models.LabelSet, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			return false
		}
	}
	return true
}
