package sensors

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
)

// recorder is a Sender that keeps what it is given.
type recorder struct {
	mu     sync.Mutex
	alerts []*alert.Alert
	sent   chan struct{}
}

func newRecorder() *recorder { return &recorder{sent: make(chan struct{}, 100)} }

func (r *recorder) SendAlerts(alerts []*alert.Alert) (int, error) {
	r.mu.Lock()
	r.alerts = append(r.alerts, alerts...)
	r.mu.Unlock()
	r.sent <- struct{}{}
	return 1, nil
}

// take returns and forgets what was sent so far.
func (r *recorder) take() []*alert.Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.alerts
	r.alerts = nil
	return out
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func newTracker(t *testing.T, opts Options) (*Tracker, *recorder, *clock, *prometheus.Registry) {
	t.Helper()
	c := &clock{now: t0}
	if opts.Now == nil {
		opts.Now = c.Now
	}
	reg := prometheus.NewRegistry()
	r := newRecorder()
	return New(opts, r, slog.New(slog.DiscardHandler), reg), r, c, reg
}

// lastEvent returns the exported last-event time per hostname.
func lastEvent(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "falco_am_bridge_sensor_last_event_timestamp_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetName() != "hostname" {
				t.Fatalf("unexpected labels %v", m.GetLabel())
			}
			out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestMetricPerHost(t *testing.T) {
	tr, _, _, reg := newTracker(t, Options{})
	tr.Seen("node-1", t0)
	tr.Seen("node-2", t0.Add(time.Second))
	tr.Seen("node-1", t0.Add(2*time.Second))
	// An older arrival (a concurrent request) does not move time back.
	tr.Seen("node-1", t0.Add(time.Second))
	tr.Seen("", t0) // no hostname: not tracked

	got := lastEvent(t, reg)
	want := map[string]float64{
		"node-1": float64(t0.Unix() + 2),
		"node-2": float64(t0.Unix() + 1),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("last event = %v, want %v", got, want)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP falco_am_bridge_sensors_tracked Falco sensors (hostnames) currently tracked.
# TYPE falco_am_bridge_sensors_tracked gauge
falco_am_bridge_sensors_tracked 2
`), "falco_am_bridge_sensors_tracked"); err != nil {
		t.Error(err)
	}
}

func TestEvictsLeastRecentlySeen(t *testing.T) {
	tr, _, _, reg := newTracker(t, Options{MaxTracked: 2})
	tr.Seen("a", t0)
	tr.Seen("b", t0.Add(time.Second))
	tr.Seen("a", t0.Add(2*time.Second)) // a is now the most recent
	tr.Seen("c", t0.Add(3*time.Second)) // evicts b
	got := lastEvent(t, reg)
	if _, ok := got["b"]; ok || len(got) != 2 || got["a"] == 0 || got["c"] == 0 {
		t.Errorf("tracked %v, want a and c", got)
	}
	if n := testutil.ToFloat64(tr.evicted); n != 1 {
		t.Errorf("evicted = %v, want 1", n)
	}
	tr.Seen("d", t0.Add(4*time.Second)) // evicts a
	if n := testutil.ToFloat64(tr.evicted); n != 2 {
		t.Errorf("evicted = %v, want 2", n)
	}
	if got := lastEvent(t, reg); len(got) != 2 || got["c"] == 0 || got["d"] == 0 {
		t.Errorf("tracked %v, want c and d", got)
	}
}

func TestHostileHostnames(t *testing.T) {
	tr, r, c, reg := newTracker(t, Options{SilentAfter: time.Minute})
	long := strings.Repeat("é", 200) // 400 bytes
	hosts := []string{"bad\xffutf8", long, "{{ template \"x\" }}", "a\nb\"c<d>&e", "nul\x00\x1b[0m"}
	for _, h := range hosts {
		tr.Seen(h, t0)
		tr.Seen(h, t0) // the cleaned name is found again, not added twice
	}
	got := lastEvent(t, reg) // Gather fails on invalid label values
	if len(got) != len(hosts) {
		t.Errorf("tracked %d hosts, want %d: %v", len(got), len(hosts), got)
	}
	for h := range got {
		if !utf8.ValidString(h) || len(h) > maxHostnameBytes || mapping.StripControl(h) != h {
			t.Errorf("exported hostname %q is invalid UTF-8, longer than %d bytes or holds control characters", h, maxHostnameBytes)
		}
	}
	if _, ok := got["ab\"c<d>&e"]; !ok {
		t.Errorf("a\\nb... not tracked as ab...: %v", got)
	}
	// Nothing is left of a name of control characters only.
	tr.Seen("\x00\x07", t0)
	if n := len(lastEvent(t, reg)); n != len(hosts) {
		t.Errorf("a hostname of control characters is tracked: %d hosts", n)
	}
	c.set(t0.Add(2 * time.Minute))
	tr.Check()
	alerts := r.take()
	if len(alerts) != len(hosts) {
		t.Fatalf("got %d alerts, want %d", len(alerts), len(hosts))
	}
	for _, a := range alerts {
		if err := a.Labels.Validate(); err != nil {
			t.Errorf("labels %v: %v", a.Labels, err)
		}
		for _, v := range []model.LabelValue{a.Labels["hostname"], a.Annotations["summary"], a.Annotations["description"]} {
			if strings.Contains(string(v), "{{") {
				t.Errorf("value %q holds a template delimiter", v)
			}
		}
	}
}

func TestSilentSensorAlertsAndResolves(t *testing.T) {
	tr, r, c, reg := newTracker(t, Options{
		SilentAfter:  5 * time.Minute,
		StaticLabels: func() model.LabelSet { return model.LabelSet{"cluster": "prod", "severity": "ignored"} },
	})
	tr.Seen("node-1", t0)
	tr.Seen("node-2", t0)

	c.set(t0.Add(4 * time.Minute))
	tr.Seen("node-2", c.Now())
	tr.Check()
	if a := r.take(); len(a) != 0 {
		t.Fatalf("alert before silent-after passed: %v", a)
	}

	now := t0.Add(6 * time.Minute)
	c.set(now)
	tr.Check()
	alerts := r.take()
	if len(alerts) != 1 {
		t.Fatalf("got %d alerts, want 1 for node-1", len(alerts))
	}
	firing := alerts[0]
	wantLabels := model.LabelSet{"alertname": AlertName, "hostname": "node-1", "severity": "warning", "cluster": "prod"}
	if !firing.Labels.Equal(wantLabels) {
		t.Errorf("labels = %v, want %v", firing.Labels, wantLabels)
	}
	if got, want := string(firing.Annotations["summary"]), "Falco on node-1 has sent no event for 6m"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
	if got := string(firing.Annotations["last_event_time"]); got != "2026-11-26T10:00:00Z" {
		t.Errorf("last_event_time = %q", got)
	}
	if !firing.StartsAt.Equal(t0.Add(5*time.Minute)) || !firing.EndsAt.Equal(now.Add(endsAtFactor*resendInterval)) {
		t.Errorf("startsAt %s endsAt %s", firing.StartsAt, firing.EndsAt)
	}
	if n := testutil.ToFloat64(tr.silentNow); n != 1 {
		t.Errorf("sensors_silent = %v, want 1", n)
	}

	// Not sent again before the resend interval, then sent again.
	c.set(now.Add(30 * time.Second))
	tr.Check()
	if a := r.take(); len(a) != 0 {
		t.Errorf("sent again after 30s: %v", a)
	}
	c.set(now.Add(resendInterval))
	tr.Check()
	again := r.take()
	if len(again) != 1 || !again[0].Labels.Equal(wantLabels) || !again[0].StartsAt.Equal(firing.StartsAt) ||
		!again[0].EndsAt.After(firing.EndsAt) {
		t.Fatalf("resent alerts = %v", again)
	}

	// node-1 speaks again: the alert is resolved, with the same labels.
	spoke := now.Add(90 * time.Second)
	c.set(spoke)
	tr.Seen("node-1", spoke)
	tr.Check()
	resolved := r.take()
	if len(resolved) != 1 {
		t.Fatalf("got %d alerts on speaking again, want 1", len(resolved))
	}
	res := resolved[0]
	if !res.Labels.Equal(wantLabels) || !res.StartsAt.Equal(firing.StartsAt) || !res.EndsAt.Equal(spoke) || !res.Resolve {
		t.Errorf("resolving alert: labels %v startsAt %s endsAt %s", res.Labels, res.StartsAt, res.EndsAt)
	}
	if got, want := string(res.Annotations["summary"]), "Falco on node-1 sends events again after 7m30s of silence"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
	tr.Check()
	if a := r.take(); len(a) != 0 {
		t.Errorf("sent after resolving: %v", a)
	}
	if n := testutil.ToFloat64(tr.silentNow); n != 0 {
		t.Errorf("sensors_silent = %v, want 0", n)
	}
	if got := lastEvent(t, reg)["node-1"]; got != float64(spoke.Unix()) {
		t.Errorf("last event of node-1 = %v, want %v", got, spoke.Unix())
	}

	// Quiet again: a new alert, starting anew.
	c.set(spoke.Add(6 * time.Minute))
	tr.Check()
	if a := r.take(); len(a) != 2 || !a[0].StartsAt.After(firing.StartsAt) {
		t.Errorf("alerts after a second silence = %v, want node-1 and node-2 anew", a)
	}
}

func TestOffWithoutSilentAfter(t *testing.T) {
	tr, r, c, _ := newTracker(t, Options{})
	tr.Seen("node-1", t0)
	c.set(t0.Add(24 * time.Hour))
	tr.Check()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	tr.Run(ctx) // returns at once
	if a := r.take(); len(a) != 0 {
		t.Errorf("alerts with silent-after 0: %v", a)
	}
}

// Run resolves as soon as a sensor speaks, without waiting for its ticker.
func TestRunResolvesOnWake(t *testing.T) {
	tr, r, c, _ := newTracker(t, Options{SilentAfter: time.Hour})
	tr.Seen("node-1", t0)
	c.set(t0.Add(2 * time.Hour))
	tr.Check()
	if a := r.take(); len(a) != 1 {
		t.Fatalf("got %d alerts, want 1", len(a))
	}
	<-r.sent
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { tr.Run(ctx); close(done) }()
	tr.Seen("node-1", c.Now())
	select {
	case <-r.sent:
	case <-t.Context().Done():
		t.Fatal("no resolve sent")
	}
	cancel()
	<-done
	if a := r.take(); len(a) != 1 || !a[0].EndsAt.Equal(c.Now()) || !a[0].Resolve {
		t.Errorf("resolve = %v", a)
	}
}

func TestCheckInterval(t *testing.T) {
	for _, tc := range []struct{ after, want time.Duration }{
		{time.Second, 250 * time.Millisecond},
		{100 * time.Millisecond, 100 * time.Millisecond},
		{time.Minute, 15 * time.Second},
		{time.Hour, 15 * time.Second},
	} {
		tr, _, _, _ := newTracker(t, Options{SilentAfter: tc.after})
		if got := tr.CheckInterval(); got != tc.want {
			t.Errorf("CheckInterval(%s) = %s, want %s", tc.after, got, tc.want)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	tr, _, c, reg := newTracker(t, Options{MaxTracked: 50, SilentAfter: time.Millisecond})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				tr.Seen(fmt.Sprintf("host-%d", (g*7+i)%80), t0.Add(time.Duration(i)*time.Millisecond))
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			c.set(t0.Add(time.Duration(i) * 10 * time.Millisecond))
			tr.Check()
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if got := len(lastEvent(t, reg)); got > 50 {
		t.Errorf("tracked %d, more than max 50", got)
	}
}

func BenchmarkSeen(b *testing.B) {
	tr := New(Options{}, newRecorder(), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	hosts := make([]string, 1000)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("ip-10-0-%d-%d.ec2.internal", i/256, i%256)
	}
	now := time.Now()
	b.ResetTimer()
	for i := range b.N {
		tr.Seen(hosts[i%len(hosts)], now)
	}
}

// TestManySilentSensorsOneAlert: 10,000 made-up hostnames that go silent
// cost one FalcoSensorsSilent, re-sent every minute, not 10,000 alerts a
// minute. Sensors that had an alert of their own are resolved when the
// grouped alert takes over, and get theirs again once few are silent.
func TestManySilentSensorsOneAlert(t *testing.T) {
	const made = 10000
	tr, r, c, _ := newTracker(t, Options{
		MaxTracked: 2 * made, SilentAfter: 5 * time.Minute,
		StaticLabels: func() model.LabelSet { return model.LabelSet{"cluster": "prod"} },
	})
	count := func(alerts []*alert.Alert) (firing, resolving map[model.LabelValue]int) {
		firing, resolving = map[model.LabelValue]int{}, map[model.LabelValue]int{}
		for _, a := range alerts {
			if a.Resolve {
				resolving[a.Labels["alertname"]]++
			} else {
				firing[a.Labels["alertname"]]++
			}
		}
		return firing, resolving
	}

	// Three real sensors go quiet first: an alert each.
	for i := range 3 {
		tr.Seen(fmt.Sprintf("node-%d", i), t0)
	}
	c.set(t0.Add(6 * time.Minute))
	tr.Check()
	if firing, _ := count(r.take()); firing[AlertName] != 3 || len(firing) != 1 {
		t.Fatalf("three silent sensors: %v, want 3 %s", firing, AlertName)
	}

	// A sender makes up 10,000 hostnames, which then say nothing more.
	start := t0.Add(7 * time.Minute)
	for i := range made {
		tr.Seen(fmt.Sprintf("made-up-%d.example", i), start)
	}
	total := 0
	var group *alert.Alert
	for minute := 0; minute <= 30; minute++ {
		c.set(start.Add(6*time.Minute + time.Duration(minute)*time.Minute))
		tr.Check()
		alerts := r.take()
		total += len(alerts)
		firing, resolving := count(alerts)
		if minute == 0 {
			// The three alerts of their own give way to the grouped one.
			if firing[GroupAlertName] != 1 || len(firing) != 1 || resolving[AlertName] != 3 || len(resolving) != 1 {
				t.Fatalf("when the made-up sensors fall silent: firing %v, resolving %v", firing, resolving)
			}
		} else if len(alerts) != 1 || firing[GroupAlertName] != 1 {
			t.Fatalf("minute %d: firing %v, resolving %v; want the grouped alert once", minute, firing, resolving)
		}
		for _, a := range alerts {
			if a.Labels["alertname"] == GroupAlertName {
				group = a
			}
		}
	}
	// 3 resolved, then one a minute.
	if want := 3 + 31; total != want {
		t.Errorf("%d alerts in 30 minutes for %d silent sensors, want %d", total, made+3, want)
	}
	wantLabels := model.LabelSet{"alertname": GroupAlertName, "severity": "warning", "cluster": "prod"}
	if !group.Labels.Equal(wantLabels) || group.Annotations["silent_sensors"] != "10003" {
		t.Errorf("grouped alert: labels %v, silent_sensors %q", group.Labels, group.Annotations["silent_sensors"])
	}
	if got := string(group.Annotations["summary"]); got != "10003 Falco sensors have sent no event for more than 5m" {
		t.Errorf("summary %q", got)
	}
	if d := string(group.Annotations["description"]); !strings.Contains(d, "node-0, node-1, node-2, made-up-0.example") || !strings.Contains(d, "and 9993 more") {
		t.Errorf("description %q", d)
	}
	if n := testutil.ToFloat64(tr.silentNow); n != made+3 {
		t.Errorf("sensors_silent = %v", n)
	}

	// All but two made-up ones speak again: the grouped alert resolves
	// and the two left get an alert each.
	now := c.Now()
	for i := range 3 {
		tr.Seen(fmt.Sprintf("node-%d", i), now)
	}
	for i := 2; i < made; i++ {
		tr.Seen(fmt.Sprintf("made-up-%d.example", i), now)
	}
	c.set(now.Add(time.Minute))
	tr.Check()
	firing, resolving := count(r.take())
	if resolving[GroupAlertName] != 1 || len(resolving) != 1 || firing[AlertName] != 2 || len(firing) != 1 {
		t.Fatalf("once few are silent: firing %v, resolving %v", firing, resolving)
	}
}
