package mapping

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
)

func parse(t *testing.T, src string) *Mapping {
	t.Helper()
	m, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

func event(t *testing.T, js string) *falco.Event {
	t.Helper()
	evs, errs := falco.Decode([]byte(js))
	if len(errs) > 0 || len(evs) != 1 {
		t.Fatalf("bad test event: %v", errs)
	}
	return &evs[0]
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []string // each must appear in the error
	}{
		{"unknown key", "labels: {}\nlabls:\n  a: b\n", []string{`test.yaml:2: unknown key "labls"`}},
		{"unknown override key", "overrides:\n  - match: {rules: [x]}\n", []string{`test.yaml:2: unknown key "rules"`}},
		{"template syntax", "labels:\n  a: '{{ .Rule '\n", []string{"test.yaml:2: labels.a:", "unclosed action"}},
		{"unknown function", "annotations:\n  a: '{{ nope .Rule }}'\n", []string{"test.yaml:2: annotations.a:", `function "nope" not defined`}},
		{"unknown data field", "labels:\n  ok: x\n  a: '{{ .Rul }}'\n", []string{"test.yaml:3: labels.a:", "can't evaluate field Rul"}},
		{"wrong argument", "overrides:\n  - annotations:\n      x: '{{ .Field 1 }}'\n", []string{"test.yaml:3: overrides[0].annotations.x:", "expected string; found 1"}},
		{"bad label name", "labels:\n  pod-name: x\n", []string{"test.yaml:2: labels.pod-name:", "not a valid name"}},
		{"reserved label name", "static_labels:\n  __x: y\n", []string{"test.yaml:2: static_labels.__x: names starting with __ are reserved"}},
		{"bad annotation name", "overrides:\n  - annotations:\n      1st: x\n", []string{"test.yaml:3: overrides[0].annotations.1st:"}},
		{"bad regexp", "overrides:\n  - match:\n      rule_regex: '('\n", []string{"test.yaml:3: overrides[0].match.rule_regex:", "missing closing )"}},
		{"bad ttl", "ttl: soon\n", []string{`test.yaml:1: "soon" is not a duration`}},
		{"bad override ttl", "overrides:\n  - ttl: -1m\n", []string{`test.yaml:2: "-1m" is not a duration`}},
		{"zero ttl", "ttl: 0s\n", []string{"test.yaml:1: ttl: must be greater than 0"}},
		{"bad min_priority", "min_priority: urgent\n", []string{`test.yaml:1: "urgent" is not a Falco priority`}},
		{"bad override min_priority", "overrides:\n  - match:\n      min_priority: loud\n", []string{`test.yaml:3: "loud" is not a Falco priority`}},
		{"bad severity key", "severities:\n  loud: critical\n", []string{"severities.loud:", "not a Falco priority"}},
		{"small limit", "limits:\n  max_label_bytes: 10\n", []string{"limits.max_label_bytes: must be at least 64, got 10"}},
		{"duplicate label", "labels:\n  a: x\n  a: y\n", []string{"test.yaml:3:", `"a" is set twice`}},
		{"label not a string", "labels:\n  a: [x]\n", []string{"test.yaml:2:", "a: expected a string"}},
		{"all problems at once", "labels:\n  bad-name: x\n  b: '{{ .Rule '\nttl: 0s\n", []string{"labels.bad-name", "labels.b", "ttl: must be greater than 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tc.src))
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestAlertnameIsRequired: a mapping that can make an alert without
// alertname is refused at compile time, naming the key. A file holding
// only ttl makes alerts with no labels at all, which Alertmanager refuses.
func TestAlertnameIsRequired(t *testing.T) {
	for name, tc := range map[string]struct{ src, want string }{
		"empty file":      {"", "test.yaml: labels.alertname: missing"},
		"ttl only":        {"ttl: 3s\n", "test.yaml: labels.alertname: missing"},
		"empty template":  {"labels:\n  alertname: ''\n", "test.yaml:2: labels.alertname: is empty"},
		"empty static":    {"static_labels:\n  alertname: ' '\n", "test.yaml:2: static_labels.alertname: is empty"},
		"override":        {"labels:\n  alertname: x\noverrides:\n  - labels:\n      alertname: ''\n", "test.yaml:5: overrides[0].labels.alertname: removes alertname"},
		"renders nothing": {"labels:\n  alertname: '{{ .Field \"nope\" }}'\n", "test.yaml:2: labels.alertname: renders empty"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%q): %v, want an error containing %q", tc.src, err, tc.want)
			}
		})
	}
	if _, err := Parse("test.yaml", []byte("static_labels:\n  alertname: Falco\n")); err != nil {
		t.Fatalf("a static alertname: %v", err)
	}
}

const base = `
labels:
  alertname: '{{ camelCase .Rule }}'
  severity: '{{ .Severity }}'
annotations:
  summary: '{{ .Rule }} ({{ .Labels.severity }})'
`

func TestOverrides(t *testing.T) {
	m := parse(t, base+`
static_labels:
  cluster: prod
overrides:
  - match: {rule: [Terminal shell in container]}
    labels: {team: security}
    annotations: {runbook_url: 'https://runbooks.example.com/{{ .Labels.alertname }}'}
  - match: {rule_regex: 'K8s .*'}
    labels: {team: platform}
    ttl: 1h
  - match: {tags: [shell, container], min_priority: critical}
    labels: {page: 'yes', cluster: ''}
  - match: {source: [internal]}
    drop: true
  - match: {rule: [Terminal shell in container], source: [syscall]}
    labels: {team: secops}
`)
	for _, tc := range []struct {
		name   string
		event  string
		labels map[string]string // "" means absent
		annos  map[string]string
		ttl    time.Duration
		drop   string
	}{
		{
			name:   "rule name, later override wins, tags and min priority",
			event:  `{"rule":"Terminal shell in container","priority":"Critical","time":"2026-01-02T00:00:00Z","source":"syscall","tags":["container","shell","mitre"]}`,
			labels: map[string]string{"team": "secops", "page": "yes", "cluster": "", "severity": "critical", "alertname": "TerminalShellInContainer"},
			annos:  map[string]string{"runbook_url": "https://runbooks.example.com/TerminalShellInContainer", "summary": "Terminal shell in container (critical)"},
			ttl:    DefaultTTL,
		},
		{
			name:   "min priority not reached, one tag missing",
			event:  `{"rule":"Terminal shell in container","priority":"Warning","time":"2026-01-02T00:00:00Z","source":"syscall","tags":["shell"]}`,
			labels: map[string]string{"team": "secops", "page": "", "cluster": "prod", "severity": "warning"},
			ttl:    DefaultTTL,
		},
		{
			name:   "regexp is anchored",
			event:  `{"rule":"K8s Secret Get","priority":"Notice","time":"2026-01-02T00:00:00Z"}`,
			labels: map[string]string{"team": "platform", "severity": "info", "cluster": "prod"},
			ttl:    time.Hour,
		},
		{
			name:   "regexp does not match inside a name",
			event:  `{"rule":"Not K8s Secret Get","priority":"Notice","time":"2026-01-02T00:00:00Z"}`,
			labels: map[string]string{"team": ""},
			ttl:    DefaultTTL,
		},
		{
			name:  "drop by source",
			event: `{"rule":"Falco internal: metrics snapshot","priority":"Informational","time":"2026-01-02T00:00:00Z","source":"internal"}`,
			drop:  DropOverride,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := m.Map(event(t, tc.event), goldenReceived)
			if len(res.Errors) > 0 {
				t.Fatal(res.Errors)
			}
			if res.Dropped != tc.drop {
				t.Fatalf("Dropped = %q, want %q", res.Dropped, tc.drop)
			}
			if tc.drop != "" {
				if res.Alert != nil {
					t.Fatal("dropped event made an alert")
				}
				return
			}
			for k, want := range tc.labels {
				if got := string(res.Alert.Labels[labelName(k)]); got != want {
					t.Errorf("label %s = %q, want %q", k, got, want)
				}
			}
			for k, want := range tc.annos {
				if got := string(res.Alert.Annotations[labelName(k)]); got != want {
					t.Errorf("annotation %s = %q, want %q", k, got, want)
				}
			}
			if got := res.Alert.EndsAt.Sub(goldenReceived); got != tc.ttl {
				t.Errorf("ttl = %v, want %v", got, tc.ttl)
			}
		})
	}
}

func TestMinPriority(t *testing.T) {
	m := parse(t, "min_priority: warning\n"+base)
	for prio, dropped := range map[string]bool{"Emergency": false, "Warning": false, "Notice": true, "Debug": true} {
		res := m.Map(event(t, `{"rule":"R","priority":"`+prio+`","time":"2026-01-02T00:00:00Z"}`), goldenReceived)
		if (res.Dropped == DropPriority) != dropped || (res.Alert == nil) != dropped {
			t.Errorf("%s: Dropped=%q Alert=%v", prio, res.Dropped, res.Alert != nil)
		}
	}
}

func TestSeverities(t *testing.T) {
	m := mustDefault(t)
	want := map[string]string{
		"Emergency": "critical", "Alert": "critical", "Critical": "critical", "Error": "error",
		"Warning": "warning", "Notice": "info", "Informational": "info", "Debug": "info",
	}
	for prio, sev := range want {
		res := m.Map(event(t, `{"rule":"R","priority":"`+prio+`","time":"2026-01-02T00:00:00Z"}`), goldenReceived)
		if got := string(res.Alert.Labels["severity"]); got != sev {
			t.Errorf("%s: severity %q, want %q", prio, got, sev)
		}
		if got := string(res.Alert.Labels["priority"]); got != strings.ToLower(prio) {
			t.Errorf("%s: priority label %q", prio, got)
		}
	}
	custom := parse(t, "severities:\n  notice: warning\n"+base)
	res := custom.Map(event(t, `{"rule":"R","priority":"notice","time":"2026-01-02T00:00:00Z"}`), goldenReceived)
	if got := res.Alert.Labels["severity"]; got != "warning" {
		t.Errorf("custom severity: %q", got)
	}
}

func TestLifecycle(t *testing.T) {
	m := parse(t, "ttl: 15m\ngenerator_url: '{{ .Field \"url\" }}'\n"+base)
	for _, tc := range []struct {
		name, time, url string
		wantStart       time.Time
		wantURL         string
		wantErr         bool
	}{
		{"past event", "2026-01-02T23:00:00Z", "https://falco.example.com/e/1", time.Date(2026, 1, 2, 23, 0, 0, 0, time.UTC), "https://falco.example.com/e/1", false},
		{"future event is clamped", "2026-01-03T01:00:00Z", "", goldenReceived, "", false},
		{"invalid url left out", "2026-01-02T23:00:00Z", "not a url at all %%", time.Date(2026, 1, 2, 23, 0, 0, 0, time.UTC), "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := m.Map(event(t, `{"rule":"R","priority":"Debug","time":"`+tc.time+`","output_fields":{"url":"`+tc.url+`"}}`), goldenReceived)
			a := res.Alert
			if !a.StartsAt.Equal(tc.wantStart) || !a.EndsAt.Equal(goldenReceived.Add(15*time.Minute)) || a.GeneratorURL != tc.wantURL {
				t.Errorf("startsAt %v endsAt %v url %q", a.StartsAt, a.EndsAt, a.GeneratorURL)
			}
			if (len(res.Errors) > 0) != tc.wantErr {
				t.Errorf("errors: %v", res.Errors)
			}
		})
	}
}

func TestRuntimeTemplateErrorKeepsTheAlert(t *testing.T) {
	m := parse(t, `
labels:
  alertname: x
  bad: '{{ index .Tags 5 }}'
annotations:
  summary: ok
`)
	res := m.Map(event(t, `{"rule":"R","priority":"Debug","time":"2026-01-02T00:00:00Z","tags":["a"]}`), goldenReceived)
	if res.Alert == nil || res.Alert.Labels["alertname"] != "x" || res.Alert.Annotations["summary"] != "ok" {
		t.Fatalf("alert lost: %+v", res.Alert)
	}
	if _, ok := res.Alert.Labels["bad"]; ok || len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), "labels.bad") {
		t.Fatalf("errors %v, labels %v", res.Errors, res.Alert.Labels)
	}
}

func TestEscapeTemplateDelimiters(t *testing.T) {
	for in, want := range map[string]string{
		"plain":               "plain",
		"{{ id }}":            "{ { id } }",
		"{{{":                 "{ { {",
		"}}}}":                "} } } }",
		"{ {":                 "{ {",
		`{{ template "x" }}`:  `{ { template "x" } }`,
		"a{b}c":               "a{b}c",
		"{{-/* comment */-}}": "{ {-/* comment */-} }",
	} {
		got := EscapeTemplateDelimiters(in)
		if got != want {
			t.Errorf("EscapeTemplateDelimiters(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(got, "{{") || strings.Contains(got, "}}") {
			t.Errorf("%q still holds a delimiter", got)
		}
	}
	off := parse(t, "limits:\n  escape_template_delimiters: false\nlabels:\n  alertname: x\nannotations:\n  c: '{{ .Field \"c\" }}'\n")
	res := off.Map(event(t, `{"rule":"R","priority":"Debug","time":"2026-01-02T00:00:00Z","output_fields":{"c":"{{ id }}"}}`), goldenReceived)
	if got := res.Alert.Annotations["c"]; got != "{{ id }}" {
		t.Errorf("escaping switched off: %q", got)
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in  string
		max int
	}{
		{strings.Repeat("a", 100), 64},
		{strings.Repeat("é", 100), 64},
		{strings.Repeat("😀", 100), 65},
		{strings.Repeat("😀", 100), 66},
		{strings.Repeat("😀", 100), 67},
	} {
		got := Truncate(tc.in, tc.max)
		if len(got) > tc.max || !utf8.ValidString(got) || !strings.HasSuffix(got, truncMark) {
			t.Errorf("Truncate(%q..., %d) = %q (%d bytes)", tc.in[:8], tc.max, got, len(got))
		}
		if len(got) < tc.max-utf8.UTFMax {
			t.Errorf("Truncate cut too much: %d bytes of %d", len(got), tc.max)
		}
	}
	if got := Truncate("short", 64); got != "short" {
		t.Errorf("short value changed: %q", got)
	}
}

func TestCamelCase(t *testing.T) {
	for in, want := range map[string]string{
		"Terminal shell in container":      "TerminalShellInContainer",
		"Unexpected shell spawned by bash": "UnexpectedShellSpawnedByBash",
		"Attach/Exec Pod":                  "AttachExecPod",
		"open_from_cat":                    "OpenFromCat",
		"Falco internal: metrics snapshot": "FalcoInternalMetricsSnapshot",
		"PTRACE anti-debug attempt":        "PTRACEAntiDebugAttempt",
		"K8s Serviceaccount Created":       "K8sServiceaccountCreated",
		"  ":                               "",
		"écriture sous /etc":               "ÉcritureSousEtc",
	} {
		if got := CamelCase(in); got != want {
			t.Errorf("CamelCase(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestShippedMappings compiles every mapping file the repository ships.
func TestShippedMappings(t *testing.T) {
	files, _ := filepath.Glob("../../mapping/*.yaml")
	more, _ := filepath.Glob("../../examples/*mapping*.yaml")
	files = append(files, more...)
	if len(files) == 0 {
		t.Fatal("no shipped mapping files found")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(f, data); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestCorpus maps every real Falco alert of the shared corpus with the
// shipped mapping.
func TestCorpus(t *testing.T) {
	path := filepath.Join("..", "..", "..", "shared", "falco-events", "real-events.jsonl")
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Skipf("corpus %s not found: it lives beside the repository as ../shared/falco-events/real-events.jsonl", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	m := mustDefault(t)
	evs, errs := falco.Decode(data)
	if len(errs) > 0 || len(evs) == 0 {
		t.Fatalf("corpus does not decode: %v", errs)
	}
	for i := range evs {
		res := m.Map(&evs[i], goldenReceived)
		if res.Alert == nil || len(res.Errors) > 0 {
			t.Errorf("line %d (%s): dropped=%q errors=%v", i+1, evs[i].Rule, res.Dropped, res.Errors)
			continue
		}
		checkAlert(t, m, res.Alert)
		if res.Alert.Labels["falco_rule"] != labelValue(evs[i].Rule) || res.Alert.Annotations["summary"] == "" {
			t.Errorf("line %d: labels %v", i+1, res.Alert.Labels)
		}
	}
}
