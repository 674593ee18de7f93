package k8scheck

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/app"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/config"
)

const dashboardFile = repo + "/examples/grafana/falco-am-bridge.json"

// sensorMetric is the per-sensor time of the last event; the rules and
// the dashboard use it before every build of the bridge exports it.
const sensorMetric = "falco_am_bridge_sensor_last_event_timestamp_seconds"

// exportedNames runs the bridge in-process (durable queue on, one
// Alertmanager), feeds it an event, and returns the names of the series
// its registry exposes, histogram and summary series included.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	defer am.Close()
	fs := pflag.NewFlagSet("bridge", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	if err := fs.Parse([]string{
		"--web.listen-address=127.0.0.1:0",
		"--alertmanager.url=" + am.URL,
		"--alertmanager.batch-wait=0s",
		"--storage.path=" + t.TempDir(),
	}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(fs)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, nil) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	base := "http://" + a.Addr()
	event := `{"output":"x","priority":"Warning","rule":"Test rule","time":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","hostname":"node-a","source":"syscall","output_fields":{}}`
	var resp *http.Response
	for range 100 {
		resp, err = http.Post(base+"/", "application/json", strings.NewReader(event))
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /: %s", resp.Status)
	}
	if resp, err = http.Get(base + "/metrics"); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	families, err := a.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		n := f.GetName()
		names[n] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[n+"_sum"], names[n+"_count"] = true, true
		}
	}
	if !names[sensorMetric] {
		t.Logf("%s is not exported by this build; allowed explicitly", sensorMetric)
	}
	return names
}

// allowed: what a query may name besides the bridge's own series.
func allowed(exported map[string]bool, name string) bool {
	return exported[name] || name == "up" || name == sensorMetric
}

// grafanaVar matches Grafana's variables in a query.
var grafanaVar = regexp.MustCompile(`\$\{?(\w+)\}?`)

// metricNames parses a PromQL expression, Grafana variables replaced, and
// returns the metric names it selects.
func metricNames(expr string) ([]string, error) {
	expr = grafanaVar.ReplaceAllStringFunc(expr, func(v string) string {
		switch strings.Trim(v, "${}") {
		case "__rate_interval", "__interval", "__range":
			return "5m"
		}
		return "x"
	})
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names, nil
}

type dashboard struct {
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func TestDashboardNamesOnlyExportedMetrics(t *testing.T) {
	exported := exportedNames(t)
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	used := map[string]bool{}
	check := func(where, expr string) {
		names, err := metricNames(expr)
		if err != nil {
			t.Errorf("%s: %q: %v", where, expr, err)
			return
		}
		for _, n := range names {
			used[n] = true
			if !allowed(exported, n) {
				t.Errorf("%s: %s is not a metric the bridge exports", where, n)
			}
		}
	}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				check("panel "+p.Title, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	labelValues := regexp.MustCompile(`^label_values\((.*),\s*\w+\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		s, _ := q["query"].(string)
		m := labelValues.FindStringSubmatch(s)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, s)
			continue
		}
		check("variable "+v.Name, m[1])
	}
	// What the dashboard is for: events in, accepted, rejected; alerts sent
	// and dropped per Alertmanager; queue fill; delivery latency; reloads.
	for _, n := range []string{
		"falco_am_bridge_events_received_total", "falco_am_bridge_events_accepted_total", "falco_am_bridge_events_invalid_total",
		"falco_am_bridge_alertmanager_alerts_sent_total", "falco_am_bridge_alertmanager_alerts_dropped_total",
		"falco_am_bridge_alertmanager_queue_length", "falco_am_bridge_alertmanager_queue_capacity",
		"falco_am_bridge_alertmanager_request_duration_seconds_bucket", "falco_am_bridge_config_last_reload_successful",
	} {
		if !used[n] {
			t.Errorf("no panel shows %s", n)
		}
	}
	var unused []string
	for n := range exported {
		if strings.HasPrefix(n, "falco_am_bridge_") && !used[n] && !strings.HasSuffix(n, "_count") && !strings.HasSuffix(n, "_sum") {
			unused = append(unused, n)
		}
	}
	sort.Strings(unused)
	t.Logf("exported but not on the dashboard: %s", strings.Join(unused, ", "))
}

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

type ruleTests struct {
	RuleFiles          []string `json:"rule_files"`
	EvaluationInterval string   `json:"evaluation_interval"`
	Tests              []struct {
		Name          string `json:"name"`
		Interval      string `json:"interval"`
		InputSeries   []any  `json:"input_series"`
		AlertRuleTest []struct {
			EvalTime  string `json:"eval_time"`
			Alertname string `json:"alertname"`
			ExpAlerts []any  `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// TestRules runs promtool on the shipped rules and their unit tests, and
// checks every alert is tested both firing and quiet, and names only
// metrics the bridge exports.
func TestRules(t *testing.T) {
	promtool := promtoolBin(t)
	for _, args := range [][]string{
		{"check", "rules", rulesFile},
		{"test", "rules", strings.TrimSuffix(rulesFile, ".yml") + ".test.yml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	}

	var rf ruleFile
	readStrict(t, rulesFile, &rf)
	var tf ruleTests
	readStrict(t, strings.TrimSuffix(rulesFile, ".yml")+".test.yml", &tf)
	firing, quiet := map[string]int{}, map[string]int{}
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname]++
			} else {
				quiet[a.Alertname]++
			}
		}
	}
	exported := exportedNames(t)
	var alerts []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if firing[r.Alert] == 0 || quiet[r.Alert] == 0 {
				t.Errorf("%s: want a test where it fires and one where it does not, got %d and %d", r.Alert, firing[r.Alert], quiet[r.Alert])
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs a severity label and summary and description annotations", r.Alert)
			}
			names, err := metricNames(r.Expr)
			if err != nil {
				t.Errorf("%s: %v", r.Alert, err)
			}
			for _, n := range names {
				if !allowed(exported, n) {
					t.Errorf("%s: %s is not a metric the bridge exports", r.Alert, n)
				}
			}
		}
	}
	for name := range firing {
		if !slices.Contains(alerts, name) {
			t.Errorf("the tests name %s, which is not an alert of the rules", name)
		}
	}
	// What the rules are for: every one of these is an alert.
	for _, a := range []string{
		"FalcoAMBridgeDown", "FalcoAMBridgeAbsent", "FalcoAMBridgeAlertsDropped", "FalcoAMBridgeDeliveryFailing",
		"FalcoAMBridgeQueueNearFull", "FalcoAMBridgeReloadFailed", "FalcoAMBridgeNoEvents", "FalcoAMBridgeSensorSilent",
	} {
		if !slices.Contains(alerts, a) {
			t.Errorf("no alert %s", a)
		}
	}
}

func promtoolBin(t *testing.T) string {
	t.Helper()
	if os.Getenv("PROMTOOL_BIN") == "" {
		// Debian's prometheus package puts it on PATH.
		if p, err := exec.LookPath("promtool"); err == nil {
			t.Setenv("PROMTOOL_BIN", p)
		}
	}
	return harness.Binary(t, "PROMTOOL_BIN")
}

func readStrict(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
