package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/alertmanager/api/v2/models"
)

func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, IO{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb}, nil)
	return code, out.String(), errb.String()
}

// The nested example of the product's design notes, written here in the
// same shape: lower-case priority, integer-nanosecond time, nested objects.
const nested = `{
  "output": "10:52:54.175850394: Unexpected process called /bin/sh (command=sh -c echo hello)",
  "priority": "warning",
  "rule": "Unexpected shell spawned by bash",
  "time": 1678882374175850394,
  "source": "syscall",
  "tags": ["process", "shell"],
  "container": {
    "id": "a1b2c3d4e5f6",
    "name": "my-app-container",
    "image": "my-repo/my-app:latest",
    "labels": {"io.kubernetes.pod.name": "my-app-pod-xyz", "io.kubernetes.container.name": "my-app-container"}
  },
  "proc": {"pid": 12345, "args": "sh -c echo hello", "exe": "/bin/sh"},
  "user": {"name": "root"}
}`

func decodeAlerts(t *testing.T, s string) models.PostableAlerts {
	t.Helper()
	var alerts models.PostableAlerts
	if err := json.Unmarshal([]byte(s), &alerts); err != nil {
		t.Fatalf("output is not a JSON array of alerts: %v\n%s", err, s)
	}
	return alerts
}

func TestTranslateNested(t *testing.T) {
	code, out, errOut := run(t, nested, "translate", "--now", "2026-01-01T00:00:00Z")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	alerts := decodeAlerts(t, out)
	if len(alerts) != 1 {
		t.Fatalf("%d alerts", len(alerts))
	}
	a := alerts[0]
	for k, want := range map[string]string{
		"alertname":      "UnexpectedShellSpawnedByBash",
		"falco_rule":     "Unexpected shell spawned by bash",
		"severity":       "warning",
		"container_name": "my-app-container",
		"pod_name":       "my-app-pod-xyz",
	} {
		if a.Labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, a.Labels[k], want)
		}
	}
	if a.Annotations["summary"] == "" || a.Annotations["command"] != "sh -c echo hello" {
		t.Errorf("annotations %v", a.Annotations)
	}
	if got := a.EndsAt.String(); got != "2026-01-01T00:10:00.000Z" {
		t.Errorf("endsAt %s, want --now plus the 10m TTL", got)
	}
	if !strings.Contains(out, "sh -c echo hello") || strings.Contains(out, `\u003e`) {
		t.Errorf("output should be readable: %s", out)
	}
}

// nestedUnindented is the nested shape as the design notes write it: no
// indentation, so nested objects start lines, which a splitter guessing
// from line layout took for new events.
const nestedUnindented = `{
"output": "10:52:54.175850394: Unexpected process called /bin/sh (command=sh -c echo hello)",
"priority": "warning",
"rule": "Unexpected shell spawned by bash",
"time": 1678882374175850394,
"source": "syscall",
"container": {
"id": "a1b2c3d4e5f6",
"name": "my-app-container",
"mounts": [
{"from": "/var/lib/data", "to": "/app/data", "type": "volume"}
],
"labels": {
"io.kubernetes.pod.name": "my-app-pod-xyz",
"io.kubernetes.container.name": "my-app-container"
}
},
"proc": {
"pid": 12345,
"args": "sh -c echo hello",
"exe": "/bin/sh"
},
"user": {
"name": "root"
}
}`

// TestTranslateUnindented translates the unindented nested shape to the
// same alert as the indented one.
func TestTranslateUnindented(t *testing.T) {
	now := "2026-01-01T00:00:00Z"
	code, out, errOut := run(t, nestedUnindented, "translate", "--now", now)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	got := decodeAlerts(t, out)
	_, wantOut, _ := run(t, nested, "translate", "--now", now)
	want := decodeAlerts(t, wantOut)
	if len(got) != 1 || !reflectLabels(got[0].Labels, want[0].Labels) {
		t.Fatalf("unindented: %s\nindented: %s", out, wantOut)
	}
}

func reflectLabels(a, b models.LabelSet) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestTranslateSeedExampleVerbatim translates the design notes' example
// exactly as written (unindented) to the same alert as its indented copy.
func TestTranslateSeedExampleVerbatim(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "falco-events")
	verbatim, indented := filepath.Join(dir, "seed-example-verbatim.json"), filepath.Join(dir, "seed-example.json")
	if _, err := os.Stat(verbatim); err != nil {
		t.Skipf("%s not found: it lives beside the repository", verbatim)
	}
	now := "2026-01-01T00:00:00Z"
	code, out, errOut := run(t, "", "translate", "--now", now, verbatim)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	_, wantOut, _ := run(t, "", "translate", "--now", now, indented)
	if out != wantOut {
		t.Fatalf("verbatim:\n%s\nindented:\n%s", out, wantOut)
	}
	if alerts := decodeAlerts(t, out); len(alerts) != 1 || alerts[0].Labels["pod_name"] != "my-app-pod-xyz" {
		t.Fatalf("alerts %s", out)
	}
}

func TestTranslateSeedExample(t *testing.T) {
	path := filepath.Join("..", "..", "..", "shared", "falco-events", "seed-example.json")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not found: it lives beside the repository", path)
	}
	code, out, errOut := run(t, "", "translate", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	alerts := decodeAlerts(t, out)
	if len(alerts) != 1 || alerts[0].Labels["alertname"] != "UnexpectedShellSpawnedByBash" || alerts[0].Labels["pod_name"] != "my-app-pod-xyz" ||
		alerts[0].Labels["container_name"] != "my-app-container" || alerts[0].Labels["severity"] != "warning" || alerts[0].Annotations["summary"] == "" {
		t.Fatalf("alerts %s", out)
	}
}

func TestTranslateInvalidEvents(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "events.jsonl")
	body := `{"rule":"First","priority":"Notice","time":"2026-01-02T00:00:00Z"}
{"rule":"Broken","priority":"Loud","time":"2026-01-02T00:00:00Z"}
{"rule":"Third","priority":"Error","time":"2026-01-02T00:00:00Z"}
`
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "", "translate", "--now", "2026-01-03T00:00:00Z", f)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if want := f + `: event 1 (line 2): field "priority"`; !strings.Contains(errOut, want) {
		t.Errorf("stderr %q does not name the event and field (%q)", errOut, want)
	}
	alerts := decodeAlerts(t, out)
	if len(alerts) != 2 || alerts[0].Labels["falco_rule"] != "First" || alerts[1].Labels["falco_rule"] != "Third" {
		t.Errorf("valid events not printed in order: %s", out)
	}
}

func TestTranslateWithMappingFile(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(m, []byte("min_priority: error\nlabels:\n  alertname: '{{ .Rule }}'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := `[{"rule":"Low","priority":"Notice","time":"2026-01-02T00:00:00Z"},{"rule":"High","priority":"Critical","time":"2026-01-02T00:00:00Z"}]`
	code, out, errOut := run(t, in, "translate", "--mapping.file", m)
	if code != 0 || !strings.Contains(errOut, "event 0 (line 1): dropped by the mapping (min_priority)") {
		t.Fatalf("exit %d stderr %q", code, errOut)
	}
	alerts := decodeAlerts(t, out)
	if len(alerts) != 1 || alerts[0].Labels["alertname"] != "High" {
		t.Fatalf("alerts %s", out)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("labels:\n  a: '{{ .Rule '\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = run(t, in, "translate", "--mapping.file", bad)
	if code != 1 || !strings.Contains(errOut, bad+":2: labels.a:") {
		t.Fatalf("exit %d stderr %q", code, errOut)
	}
}

func TestCheck(t *testing.T) {
	code, out, errOut := run(t, "", "check")
	if code != 0 || !strings.Contains(out, "configuration OK") {
		t.Fatalf("exit %d out %q err %q", code, out, errOut)
	}
	code, _, errOut = run(t, "", "check", "--log.level=loud", "--alertmanager.url=ftp://x")
	if code != 1 || !strings.Contains(errOut, "log.level") || !strings.Contains(errOut, "alertmanager.urls") {
		t.Fatalf("exit %d err %q", code, errOut)
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"serve", "--help"}, {"translate", "--help"}, {"check", "--help"}, {"version", "--help"}, {"help"},
	} {
		code, out, _ := run(t, "", args...)
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: exit %d, output %q", args, code, out)
		}
	}
	_, out, _ := run(t, "", "serve", "--help")
	for _, flag := range []string{"--config.file", "--web.listen-address", "--alertmanager.url", "--mapping.file", "--log.level", "--log.format", "FALCO_AM_BRIDGE_ALERTMANAGER_URLS"} {
		if !strings.Contains(out, flag) {
			t.Errorf("serve --help does not mention %s", flag)
		}
	}
	code, out, _ := run(t, "", "version")
	if code != 0 || !strings.Contains(out, "falco-am-bridge, version") {
		t.Errorf("version: %d %q", code, out)
	}
	code, _, errOut := run(t, "", "serve", "--no-such-flag")
	if code != 1 || !strings.Contains(errOut, "no-such-flag") {
		t.Errorf("unknown flag: %d %q", code, errOut)
	}
}

// TestCheckRefusesAMappingWithoutAlertname: a mapping file that would
// make alerts without alertname (here: no labels at all) fails check,
// naming the key.
func TestCheckRefusesAMappingWithoutAlertname(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"ttl-only.yaml": "ttl: 3s\n",
		"removed.yaml":  "labels:\n  alertname: '{{ .Rule }}'\noverrides:\n  - match: {rule: [x]}\n    labels: {alertname: ''}\n",
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, name)
			if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := run(t, "", "check", "--mapping.file", file)
			if code != 1 || !strings.Contains(errOut, "alertname") || !strings.Contains(errOut, file) {
				t.Fatalf("exit %d out %q err %q", code, out, errOut)
			}
		})
	}
}
