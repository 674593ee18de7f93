package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
)

// TestMain lets the test binary be the ceiling server, as the tool starts
// itself for it.
func TestMain(m *testing.M) {
	if addr := os.Getenv(ceilingEnv); addr != "" {
		if err := serveCeiling(addr); err != nil {
			fmt.Fprintln(os.Stderr, "ceiling:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// templates loads the events the tool would use by default, or those of
// path.
func templates(t *testing.T, path string) []template {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	ts, from, err := loadTemplates(path, wd)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events from %s", len(ts), from)
	return ts
}

// TestScenarios runs small scenarios of every kind against the real bridge
// and checks that the figures add up: nothing lost, every event found once,
// the storm merged. It asserts no timing.
func TestScenarios(t *testing.T) {
	bin := harness.Binary(t, "BRIDGE_BIN")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rn := &runner{
		bridge: bin, self: self, templates: templates(t, ""),
		wait: 30 * time.Second, settle: time.Second, verifyEvery: 1, progress: t.Output(),
	}
	for _, sc := range []scenario{
		{Name: "single", Events: 300, Batch: 1, Conns: 4},
		{Name: "array-gzip", Events: 1000, Batch: 50, Conns: 4, Gzip: true},
		{Name: "storm", Events: 500, Batch: 1, Conns: 4, Storm: true},
		{Name: "paced-slow-am", Events: 100, Batch: 7, Conns: 1, Rate: 2000, AMDelay: 5 * time.Millisecond},
	} {
		t.Run(sc.Name, func(t *testing.T) {
			r, err := rn.run(t.Context(), sc)
			if err != nil {
				t.Fatal(err)
			}
			requests := (sc.Events + sc.Batch - 1) / sc.Batch
			for _, l := range []struct {
				name string
				res  loadResult
			}{{"ceiling", r.Ceiling}, {"bridge", r.Load}} {
				if l.res.Requests != requests || l.res.Events != sc.Events || l.res.Accepted != sc.Events || l.res.Statuses[http.StatusAccepted] != requests {
					t.Errorf("%s: %s; want %d requests of %d events, all 202", l.name, l.res, requests, sc.Events)
				}
			}
			if p := r.problems(); len(p) > 0 {
				t.Errorf("problems: %q", p)
			}
			if !r.Complete || r.AM.Represented != sc.Events {
				t.Errorf("complete %v, Alertmanager got alerts for %d events, want all %d", r.Complete, r.AM.Represented, sc.Events)
			}
			if r.AM.Delivered != r.AM.Alerts || r.AM.Latencies != r.AM.Delivered {
				t.Errorf("%d alerts, %d distinct, %d with a latency: want all the same", r.AM.Alerts, r.AM.Delivered, r.AM.Latencies)
			}
			if sc.Storm {
				if r.AM.Delivered > sc.Events || int(r.Merged) != sc.Events-r.AM.Delivered {
					t.Errorf("storm of %d events: %d alerts delivered and %v merged, want them to add up", sc.Events, r.AM.Delivered, r.Merged)
				}
			} else if r.AM.Delivered != sc.Events || r.Merged != 0 {
				t.Errorf("%d distinct events: %d delivered, %v merged", sc.Events, r.AM.Delivered, r.Merged)
			}
			if r.AM.Requests < 1 || r.AM.Requests > r.AM.Alerts {
				t.Errorf("%d Alertmanager requests for %d alerts", r.AM.Requests, r.AM.Alerts)
			}
			if r.AM.P50 <= 0 || r.AM.P50 > r.AM.P99 {
				t.Errorf("latency p50 %v, p99 %v", r.AM.P50, r.AM.P99)
			}
			if r.PeakRSS <= 0 || r.CeilRSS <= 0 || r.CPU < 0 || r.CeilCPU < 0 {
				t.Errorf("from /proc: peak RSS %d (ceiling %d), CPU %v (ceiling %v)", r.PeakRSS, r.CeilRSS, r.CPU, r.CeilCPU)
			}
			var table bytes.Buffer
			writeTable(&table, []result{r})
			if !strings.Contains(table.String(), "\n| "+sc.Name+" | "+thousands(sc.Events)+" | ") {
				t.Errorf("table has no row for %s:\n%s", sc.Name, table.String())
			}
		})
	}
}

// TestRealScenarios runs every real-Alertmanager scenario, small, against
// the real bridge and Alertmanager, and checks that the counts add up. It
// asserts no timing and no memory figure.
func TestRealScenarios(t *testing.T) {
	bin := harness.Binary(t, "BRIDGE_BIN")
	amBin := harness.Binary(t, "ALERTMANAGER_BIN")
	rn := &runner{
		bridge: bin, amBin: amBin, templates: templates(t, ""),
		amWait: time.Minute, amPasses: 1, settle: time.Second, progress: t.Output(),
	}
	var results []realResult
	for _, sc := range realScenarios {
		sc = sc.scaled(0.01)
		t.Run(sc.Name, func(t *testing.T) {
			r, err := rn.runReal(t.Context(), sc)
			if err != nil {
				t.Fatal(err)
			}
			results = append(results, r)
			if sc.Kill == 0 && (r.Load.Events != sc.Events || r.Load.Accepted != sc.Events) {
				t.Errorf("load: %s; want all %d events answered 202", r.Load, sc.Events)
			}
			if r.PeakRSS <= 0 {
				t.Errorf("peak RSS %d", r.PeakRSS)
			}
			switch {
			case sc.AM == amNever:
				if r.InAM != -1 || r.Delivery != 0 {
					t.Errorf("Alertmanager never started, yet %d alerts in it, delivered in %s", r.InAM, r.Delivery)
				}
			case sc.Kill > 0:
				if r.Missing != 0 || r.InAM < r.Load.Accepted {
					t.Errorf("%d answered 202, %d in Alertmanager, %d of them missing", r.Load.Accepted, r.InAM, r.Missing)
				}
			default:
				if got := r.InAM + int(r.dropped()); got != sc.Events || !r.Complete && r.dropped() == 0 {
					t.Errorf("%d in Alertmanager + %v dropped = %d, want %d (complete %v)", r.InAM, r.dropped(), got, sc.Events, r.Complete)
				}
				// A drain of a quick run's few alerts can fit between two
				// scrapes of the bridge.
				if r.InAM > 0 && r.Delivery <= 0 && !sc.Drain {
					t.Errorf("%d alerts delivered in %s", r.InAM, r.Delivery)
				}
			}
			if sc.Durable && sc.AM != amNever && r.MaxDisk <= 0 {
				t.Errorf("durable queue, yet at most %v bytes on disk", r.MaxDisk)
			}
		})
	}
	var table bytes.Buffer
	writeRealTable(&table, amCeiling{}, results)
	for _, r := range results {
		if !strings.Contains(table.String(), "\n| "+r.Scenario.Name+" | "+thousands(r.Scenario.Events)+" | ") {
			t.Errorf("table has no row for %s:\n%s", r.Scenario.Name, table.String())
		}
	}
}

// TestAMCeiling measures Alertmanager alone, small, and checks that every
// try put every alert into Alertmanager.
func TestAMCeiling(t *testing.T) {
	amBin := harness.Binary(t, "ALERTMANAGER_BIN")
	rn := &runner{amBin: amBin, templates: templates(t, ""), amPasses: 2, progress: t.Output()}
	c, err := rn.runAMCeiling(t.Context(), 300)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Tries) != len(amCeilingBatches)*len(amCeilingConns) {
		t.Errorf("%d tries, want %d", len(c.Tries), len(amCeilingBatches)*len(amCeilingConns))
	}
	for _, tr := range c.Tries {
		if tr.Err != "" || tr.InAM != 300 || tr.Load.Accepted != 300 {
			t.Errorf("batch %d × %d: %s, %d in Alertmanager, %s", tr.Batch, tr.Conns, tr.Load, tr.InAM, tr.Err)
		}
	}
	if c.Best.perSec() <= 0 {
		t.Errorf("best %+v", c.Best)
	}
	var table bytes.Buffer
	writeRealTable(&table, c, nil)
	if !strings.Contains(table.String(), "Alertmanager alone (300 distinct alerts") {
		t.Errorf("no line for Alertmanager alone:\n%s", table.String())
	}
}

// TestWireAlerts checks that the alerts of Alertmanager alone, like the
// bridge's, have a distinct label set per event, which Alertmanager's count
// relies on.
func TestWireAlerts(t *testing.T) {
	ts := templates(t, "")
	alerts, err := wireAlerts(ts, 3*len(ts), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range alerts {
		var got struct {
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		}
		if err := json.Unmarshal(a, &got); err != nil {
			t.Fatalf("alert %d: %v", i, err)
		}
		if seq, ok := parseToken(got.Annotations["description"]); !ok || seq != i {
			t.Errorf("alert %d: description %q", i, got.Annotations["description"])
		}
		if len(got.Labels) == 0 {
			t.Errorf("alert %d has no labels", i)
		}
	}
	// A storm is one alert: wireAlerts must refuse what Alertmanager would
	// count once.
	storm := make([]template, 2)
	for i := range storm {
		storm[i] = template{parts: slices.DeleteFunc(slices.Clone(ts[0].parts), func(p string) bool { return p == idMark })}
	}
	if _, err := wireAlerts(storm, 2, time.Now()); err == nil || !strings.Contains(err.Error(), "map to the same labels") {
		t.Errorf("two events of one alert: error %v", err)
	}
}

func TestRealBodies(t *testing.T) {
	ts := templates(t, "")
	for _, sc := range []realScenario{
		{Name: "arrays", Events: 25, Batch: 10},
		{Name: "single", Events: 3, Batch: 1},
		{Name: "padded", Events: 7, Batch: 3, Size: 5000},
	} {
		t.Run(sc.Name, func(t *testing.T) {
			l := realBodies(ts, sc, time.Now())
			if len(l.answered) != sc.requests() {
				t.Errorf("%d places for answers, want %d", len(l.answered), sc.requests())
			}
			next := 0
			for i := range sc.requests() {
				var b body
				if sc.Size > 0 {
					if l.make == nil || l.requests != sc.requests() || l.bodies != nil {
						t.Fatal("padded events: bodies made up front")
					}
					b = l.make(i)
				} else {
					b = l.bodies[i]
				}
				var events []map[string]any
				var err error
				if sc.Batch > 1 {
					err = json.Unmarshal(b.data, &events)
				} else {
					events = make([]map[string]any, 1)
					err = json.Unmarshal(b.data, &events[0])
				}
				if err != nil {
					t.Fatalf("body %d: %v", i, err)
				}
				if b.first != next || b.n != len(events) {
					t.Fatalf("body %d from %d with %d events, want from %d with %d", i, b.first, b.n, next, len(events))
				}
				for j, ev := range events {
					if seq, _ := parseToken(fmt.Sprint(ev["output"])); seq != next+j {
						t.Errorf("event %d has token %d", next+j, seq)
					}
					if sc.Size > 0 {
						raw, _ := json.Marshal(ev)
						if n := len(raw); n < sc.Size*9/10 || n > sc.Size*11/10 {
							t.Errorf("event %d: %d bytes, want about %d", next+j, n, sc.Size)
						}
					}
				}
				next += b.n
			}
			if next != sc.Events {
				t.Errorf("%d events, want %d", next, sc.Events)
			}
		})
	}
}

func TestRealScaled(t *testing.T) {
	sc := realScenario{Name: "x", Events: 60_000, Batch: 100, Kill: 2 * time.Second}.scaled(0.02)
	if sc.Events != 1200 || sc.Kill != 40*time.Millisecond {
		t.Errorf("scaled: %d events, kill at %s; want 1200, 40ms", sc.Events, sc.Kill)
	}
}

func TestTemplates(t *testing.T) {
	t.Run("default", func(t *testing.T) { testTemplates(t, templates(t, "")) })
	// The fallback when ../shared is missing.
	t.Run("fixtures", func(t *testing.T) { testTemplates(t, templates(t, "../../"+fixtureEvents)) })
}

func testTemplates(t *testing.T, ts []template) {
	stamp := "2026-01-02T03:04:05.000000006Z"
	decode := func(b []byte) map[string]any {
		t.Helper()
		var ev map[string]any
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		return ev
	}
	identity := func(ev map[string]any) string {
		of, _ := ev["output_fields"].(map[string]any)
		return fmt.Sprint(ev["hostname"], of["k8s.pod.name"])
	}
	for i, tmpl := range ts {
		a := decode(tmpl.appendEvent(nil, 7, true, stamp, ""))
		b := decode(tmpl.appendEvent(nil, 8, true, stamp, ""))
		if seq, ok := parseToken(fmt.Sprint(a["output"])); !ok || seq != 7 {
			t.Errorf("event %d: output %q does not start with the token of 7", i, a["output"])
		}
		if a["time"] != stamp {
			t.Errorf("event %d: time %v, want %s", i, a["time"], stamp)
		}
		if identity(a) == identity(b) {
			t.Errorf("event %d: events 7 and 8 have the same identity %s", i, identity(a))
		}
		s1 := decode(tmpl.appendEvent(nil, 7, false, stamp, ""))
		s2 := decode(tmpl.appendEvent(nil, 8, false, stamp, ""))
		if identity(s1) != identity(s2) {
			t.Errorf("event %d: storm events differ: %s and %s", i, identity(s1), identity(s2))
		}
	}
}

func TestBuildBodies(t *testing.T) {
	ts := templates(t, "")
	for _, sc := range []scenario{
		{Events: 5, Batch: 1},
		{Events: 7, Batch: 3},
		{Events: 7, Batch: 3, Gzip: true},
	} {
		t.Run(sc.String(), func(t *testing.T) {
			bodies, err := buildBodies(ts, sc, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			next := 0
			for _, b := range bodies {
				data := b.data
				if sc.Gzip {
					zr, err := gzip.NewReader(bytes.NewReader(data))
					if err != nil {
						t.Fatal(err)
					}
					if data, err = io.ReadAll(zr); err != nil {
						t.Fatal(err)
					}
				}
				var events []map[string]any
				if sc.Batch > 1 {
					err = json.Unmarshal(data, &events)
				} else {
					events = make([]map[string]any, 1)
					err = json.Unmarshal(data, &events[0])
				}
				if err != nil {
					t.Fatalf("body %d: %v", b.first, err)
				}
				if b.first != next || len(events) != b.n {
					t.Fatalf("body from %d with %d events, want from %d with %d", b.first, len(events), next, b.n)
				}
				for i, ev := range events {
					if seq, _ := parseToken(fmt.Sprint(ev["output"])); seq != next+i {
						t.Errorf("event %d has token %d", next+i, seq)
					}
				}
				next += b.n
			}
			if next != sc.Events {
				t.Errorf("%d events in the bodies, want %d", next, sc.Events)
			}
		})
	}
}

func TestScan(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   string
		seqs   []int
		events int
		bad    string // what verify says; "" for nothing
	}{
		{"one", `[{"labels":{"a":"b"},"annotations":{"description":"bench-seq=12 x"}}]`, []int{12}, 1, ""},
		{"merged", `[{"labels":{"a":"b"},"annotations":{"description":"bench-seq=3","merged_events":"4"}},` +
			`{"annotations":{"merged_events": "1","description":"bench-seq=9 y"},"labels":{"a":"c"}}]`, []int{3, 9}, 5, ""},
		{"spaced", "[ {\"labels\": {\"a\": \"b\"}, \"annotations\": {\"merged_events\": \"2\", \"description\": \"bench-seq=0\"}} ]", []int{0}, 2, ""},
		{"no number", `[{"labels":{"a":"b"},"annotations":{"description":"bench-seq=x"}}]`, []int{-1}, 1,
			`alert 0: no token at the start of its description "bench-seq=x"`},
		{"token elsewhere", `[{"labels":{"a":"b"},"annotations":{"description":"d","summary":"bench-seq=1"}}]`, []int{1}, 1,
			`alert 0: no token at the start of its description "d"`},
		{"no labels", `[{"annotations":{"description":"bench-seq=1"}}]`, []int{1}, 1, "alert 0 has no labels"},
		{"not json", `[{"labels":{"a":"b"},"annotations":{"description":"bench-seq=1"}}`, []int{1}, 1,
			"not a JSON array of alerts: unexpected end of JSON input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seqs, events := scan([]byte(tc.body))
			if fmt.Sprint(seqs) != fmt.Sprint(tc.seqs) || events != tc.events {
				t.Errorf("scan = %v, %d; want %v, %d", seqs, events, tc.seqs, tc.events)
			}
			err := verify([]byte(tc.body), seqs, events)
			if got := fmt.Sprint(err); (tc.bad == "" && err != nil) || (tc.bad != "" && got != tc.bad) {
				t.Errorf("verify = %v, want %q", err, tc.bad)
			}
		})
	}
}

func TestParseProc(t *testing.T) {
	stat := "4242 (falco am) (x)) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 75 0 0 20 0 9 0 100 1000 10 0 0\n"
	if got, err := parseStat([]byte(stat)); err != nil || got != 3250*time.Millisecond {
		t.Errorf("parseStat = %v, %v; want 3.25s", got, err)
	}
	if _, err := parseStat([]byte("4242 (x) S 1 2")); err == nil {
		t.Error("parseStat of a short line: no error")
	}
	status := "Name:\tfalco-am-bridge\nVmPeak:\t  900 kB\nVmHWM:\t   30720 kB\nVmRSS:\t 20000 kB\n"
	if got, err := parseHWM([]byte(status)); err != nil || got != 30<<20 {
		t.Errorf("parseHWM = %d, %v; want %d", got, err, 30<<20)
	}
	if _, err := parseHWM([]byte("Name:\tx\n")); err == nil {
		t.Error("parseHWM without VmHWM: no error")
	}
	// This process's own figures: /proc is there and reads.
	if _, err := cpuTime(os.Getpid()); err != nil {
		t.Error(err)
	}
	if n, err := peakRSS(os.Getpid()); err != nil || n <= 0 {
		t.Errorf("peakRSS of this process = %d, %v", n, err)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 200; i++ {
		d = append(d, time.Duration(i))
	}
	for _, tc := range []struct {
		values []time.Duration
		p      float64
		want   time.Duration
	}{
		{nil, 0.5, 0},
		{d[:1], 0.99, 1},
		{d, 0.5, 100},
		{d, 0.99, 198},
		{d, 1, 200},
	} {
		if got := percentile(tc.values, tc.p); got != tc.want {
			t.Errorf("p%g of %d values = %d, want %d", tc.p*100, len(tc.values), got, tc.want)
		}
	}
}

func TestParseScenario(t *testing.T) {
	for _, tc := range []struct {
		spec, want, err string
	}{
		{"single", "single:events=20000,batch=1,conns=8", ""},
		{"single:events=10", "single:events=10,batch=1,conns=8", ""},
		{"mine:events=50,batch=5,conns=2,rate=100,am-delay=5ms,gzip,storm", "mine:events=50,batch=5,conns=2,rate=100,am-delay=5ms,gzip,storm", ""},
		{":events=1", "", `scenario ":events=1": no name before ':'`},
		{"x:events=0", "", `scenario "x:events=0": events: 0 is not 1 or more`},
		{"x:rate=-1", "", `scenario "x:rate=-1": rate: must be 0 (flat out) or more`},
		{"x:gzip=yes", "", `scenario "x:gzip=yes": gzip: takes no value`},
		{"x:fast", "", `scenario "x:fast": fast: unknown key (events, batch, conns, rate, am-delay, gzip, storm)`},
	} {
		sc, err := parseScenario(tc.spec)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("parseScenario(%q) error = %v, want %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || sc.String() != tc.want {
			t.Errorf("parseScenario(%q) = %s, %v; want %s", tc.spec, sc, err, tc.want)
		}
	}
}

func TestCeilingDecodes(t *testing.T) {
	one := `{"output":"o","priority":"Warning","rule":"r","time":"2026-01-02T03:04:05Z","output_fields":{"evt.time":1685022245478445995}}`
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("[" + one + "," + one + "]"))
	_ = zw.Close()
	for _, tc := range []struct {
		name, body string
		gzip       bool
		n          int
		ok         bool
	}{
		{"object", one, false, 1, true},
		{"array", " [" + one + "," + one + "]", false, 2, true},
		{"ndjson", one + "\n" + one + "\n" + one + "\n", false, 3, true},
		{"gzip", gz.String(), true, 2, true},
		{"broken", one[:20], false, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/", strings.NewReader(tc.body))
			if tc.gzip {
				req.Header.Set("Content-Encoding", "gzip")
			}
			n, err := decodeCeiling(req)
			if (err == nil) != tc.ok || (tc.ok && n != tc.n) {
				t.Errorf("decodeCeiling = %d, %v; want %d, ok %v", n, err, tc.n, tc.ok)
			}
		})
	}
}

// TestLoadRetries: with retry, a body answered 503 is sent again after
// its Retry-After and counted once; without, it stays refused.
func TestLoadRetries(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if calls.Add(1)%2 == 1 { // every body is refused once
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	bodies := []body{{data: []byte(`[{}]`), first: 0, n: 1}, {data: []byte(`[{}]`), first: 1, n: 1}}
	for _, retry := range []bool{true, false} {
		calls.Store(0)
		res := load{url: srv.URL, bodies: bodies, conns: 1, retry: retry}.run(t.Context())
		want := loadResult{Requests: 2, Events: 2, Accepted: 2, Retries: 2, Statuses: map[int]int{503: 2, 202: 2}}
		if !retry {
			// Without retry: the first refused, the second accepted.
			want = loadResult{Requests: 2, Events: 2, Accepted: 1, Statuses: map[int]int{503: 1, 202: 1}}
		}
		res.Elapsed, res.FirstErr = 0, ""
		if fmt.Sprint(res) != fmt.Sprint(want) || res.Retries != want.Retries {
			t.Errorf("retry %v: %s (%d retries), want %s (%d retries)", retry, res, res.Retries, want, want.Retries)
		}
	}
}
