package mapping

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenReceived is the arrival time the golden files assume.
var goldenReceived = time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)

// goldenAlert is an alert as the golden files show it: exact times.
type goldenAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

func toGolden(a *alert.Alert) goldenAlert {
	g := goldenAlert{Labels: map[string]string{}, StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: a.GeneratorURL}
	for k, v := range a.Labels {
		g.Labels[string(k)] = string(v)
	}
	if len(a.Annotations) > 0 {
		g.Annotations = map[string]string{}
		for k, v := range a.Annotations {
			g.Annotations[string(k)] = string(v)
		}
	}
	return g
}

func mustDefault(t testing.TB) *Mapping {
	t.Helper()
	m, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestGolden maps every fixture of testdata/events with the shipped mapping
// and compares with testdata/golden. Run with -update to rewrite them.
func TestGolden(t *testing.T) {
	m := mustDefault(t)
	files, err := filepath.Glob("testdata/events/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			evs, errs := falco.Decode(data)
			if len(errs) > 0 {
				t.Fatalf("fixture does not decode: %v", errs)
			}
			out := []goldenAlert{}
			for i := range evs {
				res := m.Map(&evs[i], goldenReceived)
				if len(res.Errors) > 0 {
					t.Errorf("mapping errors: %v", res.Errors)
				}
				if res.Alert == nil {
					t.Fatalf("event %d dropped (%s)", i, res.Dropped)
				}
				checkAlert(t, m, res.Alert)
				out = append(out, toGolden(res.Alert))
			}
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(out); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "golden", name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./pkg/mapping -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(want, b.Bytes()) {
				t.Errorf("mapping of %s differs from %s:\n%s", f, golden, lineDiff(string(want), b.String()))
			}
		})
	}
}

// checkAlert asserts what must hold for every alert the shipped mapping
// makes, whatever the event.
func checkAlert(t *testing.T, m *Mapping, a *alert.Alert) {
	t.Helper()
	if err := a.Labels.Validate(); err != nil {
		t.Errorf("labels invalid: %v", err)
	}
	for _, set := range []map[string]string{toGolden(a).Labels, toGolden(a).Annotations} {
		for k, v := range set {
			if v == "" {
				t.Errorf("%s is empty; empty values must be left out", k)
			}
			if strings.Contains(v, "{{") || strings.Contains(v, "}}") {
				t.Errorf("%s holds a template delimiter: %q", k, v)
			}
		}
	}
	for k, v := range a.Labels {
		if !isClassic(string(k)) || len(v) > m.maxLabel {
			t.Errorf("label %s=%q breaks the name rule or the %d-byte limit", k, v, m.maxLabel)
		}
	}
	for k, v := range a.Annotations {
		if len(v) > m.maxAnno {
			t.Errorf("annotation %s is %d bytes, over %d", k, len(v), m.maxAnno)
		}
	}
	for _, perEvent := range []string{"command", "event_time", "output_fields", "user", "description"} {
		if _, ok := a.Labels[labelName(perEvent)]; ok {
			t.Errorf("per-event value %s became a label", perEvent)
		}
	}
	if a.StartsAt.After(goldenReceived) || !a.EndsAt.After(goldenReceived) {
		t.Errorf("startsAt %v / endsAt %v not around the arrival %v", a.StartsAt, a.EndsAt, goldenReceived)
	}
}

func isClassic(name string) bool {
	for i, c := range name {
		letter := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return name != ""
}

// lineDiff shows the first lines that differ.
func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(wl), len(gl)) && shown < 10; i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			b.WriteString("  line " + itoa(i+1) + ":\n    want: " + w + "\n    got:  " + g + "\n")
			shown++
		}
	}
	return b.String()
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func labelName(s string) model.LabelName { return model.LabelName(s) }

func labelValue(s string) model.LabelValue { return model.LabelValue(s) }
