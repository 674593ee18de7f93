package mapping

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
)

// sidekickPayload is the part of an event falcosidekick's Alertmanager
// output reads, decoded as falcosidekick decodes it (encoding/json, keys
// matched case-insensitively, numbers kept as json.Number).
type sidekickPayload struct {
	Rule         string         `json:"rule"`
	Priority     string         `json:"priority"`
	Source       string         `json:"source"`
	Hostname     string         `json:"hostname"`
	Tags         []string       `json:"tags"`
	OutputFields map[string]any `json:"output_fields"`
}

var sidekickUnsafe = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// sidekickLabels is what falcosidekick (outputs/alertmanager.go, 2.x) puts
// in an alert's labels, written from its rules: every string or number
// output field under a sanitised name, then source, rule, alertname,
// eventsource, hostname, sorted tags, priority and the default severity.
// The n_drop* fields of syscall-drop events, which it re-maps, are left out.
func sidekickLabels(t *testing.T, raw []byte) map[string]string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var p sidekickPayload
	if err := d.Decode(&p); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{}
	for k, v := range p.OutputFields {
		if strings.HasPrefix(k, "n_evts") || strings.HasPrefix(k, "n_drop") {
			continue
		}
		name := sidekickUnsafe.ReplaceAllString(k, "_")
		name = strings.ReplaceAll(name, "__", "_")
		name = strings.Trim(name, "_")
		switch v := v.(type) {
		case string:
			labels[name] = v
		case json.Number:
			labels[name] = v.String()
		}
	}
	prio, err := falco.ParsePriority(p.Priority)
	if err != nil {
		t.Fatal(err)
	}
	labels["source"] = "falco"
	labels["rule"] = p.Rule
	labels["alertname"] = p.Rule
	labels["eventsource"] = p.Source
	if p.Hostname != "" {
		labels["hostname"] = p.Hostname
	}
	if len(p.Tags) > 0 {
		tags := slices.Clone(p.Tags)
		slices.Sort(tags)
		labels["tags"] = strings.Join(tags, ",")
	}
	labels["priority"] = prio.String()
	labels["severity"] = map[falco.Priority]string{
		falco.PriorityDebug: "information", falco.PriorityInformational: "information", falco.PriorityNotice: "information",
		falco.PriorityWarning: "warning", falco.PriorityError: "warning",
		falco.PriorityCritical: "critical", falco.PriorityAlert: "critical", falco.PriorityEmergency: "critical",
	}[prio]
	return labels
}

// The labels the preset keeps from falcosidekick's; the others were
// per-event (evt_time, proc_cmdline, pids) and are annotations now.
var presetLabels = []string{
	"alertname", "rule", "priority", "severity", "source", "eventsource", "hostname", "tags",
	"k8s_ns_name", "k8s_pod_name", "container_name",
}

// TestFalcosidekickPreset maps the corpus with mapping/falcosidekick.yaml
// and checks every alert's labels against falcosidekick's rules: the same
// names and values for the identity labels, nothing per-event among them.
func TestFalcosidekickPreset(t *testing.T) {
	src, err := os.ReadFile("../../mapping/falcosidekick.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse("falcosidekick.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	for _, name := range []string{"real-events.jsonl", "fixture-events.jsonl"} {
		path := filepath.Join("..", "..", "..", "shared", "falco-events", name)
		data, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			t.Skipf("corpus %s not found: it lives beside the repository", path)
		}
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, bytes.Split(bytes.TrimSpace(data), []byte("\n"))...)
	}
	// Own cases: "<NA>", a host process, unsorted tags, a lower-case priority.
	lines = append(lines,
		[]byte(`{"rule":"Write below etc","priority":"error","time":"2026-01-02T10:00:00Z","source":"syscall","hostname":"node-1","tags":["mitre_persistence","filesystem","T1098"],"output":"x","output_fields":{"container.name":"host","container.id":"host","k8s.ns.name":"<NA>","k8s.pod.name":null,"proc.cmdline":"vi /etc/passwd","proc.pid":4242,"evt.time":1767348000123456789}}`),
		[]byte(`{"rule":"Contact K8S API Server From Container","priority":"info","time":"2026-01-02T10:00:00Z","output":"y","output_fields":{"k8s.ns.name":"shop","k8s.pod.name":"web-0","container.name":"nginx"}}`),
	)

	checked := 0
	for i, raw := range lines {
		evs, derrs := falco.Decode(raw)
		if len(derrs) > 0 || len(evs) != 1 {
			continue // falcosidekick would not take it either (invalid time and the like)
		}
		ev := evs[0]
		res := m.Map(&ev, goldenReceived)
		if res.Alert == nil || len(res.Errors) > 0 {
			t.Errorf("event %d (%s): dropped=%q errors=%v", i+1, ev.Rule, res.Dropped, res.Errors)
			continue
		}
		checked++
		ref := sidekickLabels(t, raw)
		// The bridge trims every rendered value and breaks up "{{".
		for k, v := range ref {
			ref[k] = EscapeTemplateDelimiters(strings.TrimSpace(v))
		}
		want := model.LabelSet{}
		for _, name := range presetLabels {
			if v := ref[name]; v != "" && v != "<NA>" {
				want[model.LabelName(name)] = model.LabelValue(v)
			}
		}
		if got := res.Alert.Labels; !got.Equal(want) {
			t.Errorf("event %d (%s):\n got labels %v\nwant         %v", i+1, ev.Rule, got, want)
		}
		// What falcosidekick sent as per-event labels is in the annotations.
		for _, name := range []string{"evt_time", "proc_cmdline", "proc_pid", "user_name", "container_id", "proc_name"} {
			if v, ok := ref[name]; ok && v != "<NA>" && v != "" {
				if got := string(res.Alert.Annotations[model.LabelName(name)]); got != v {
					t.Errorf("event %d (%s): annotation %s = %q, want %q", i+1, ev.Rule, name, got, v)
				}
			}
		}
		for _, name := range []string{"info", "description"} {
			if got := res.Alert.Annotations[model.LabelName(name)]; got == "" && ev.Output != "" {
				t.Errorf("event %d: no %s annotation", i+1, name)
			}
		}
		if got := string(res.Alert.Annotations["summary"]); got != EscapeTemplateDelimiters(ev.Rule) {
			t.Errorf("event %d: summary %q, want the rule", i+1, got)
		}
	}
	if checked < 40 {
		t.Errorf("checked %d events of the corpus, want at least 40", checked)
	}
}
