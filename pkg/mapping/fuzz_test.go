package mapping

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
)

// FuzzMap decodes arbitrary bodies and maps every valid event with the
// shipped mapping: no input may panic, and every alert must keep the
// promises the mapping makes (valid names, limits, no template delimiters).
// Its corpus is in testdata/fuzz/FuzzMap; the fixtures seed it too.
func FuzzMap(f *testing.F) {
	files, _ := filepath.Glob("testdata/events/*.json")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	m, err := Default()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, _ := falco.Decode(body)
		for i := range evs {
			res := m.Map(&evs[i], goldenReceived)
			if res.Alert == nil {
				if res.Dropped == "" {
					t.Fatal("no alert and no reason")
				}
				continue
			}
			a := res.Alert
			if err := a.Labels.Validate(); err != nil {
				t.Fatalf("invalid labels %v: %v", a.Labels, err)
			}
			for k, v := range a.Labels {
				if !isClassic(string(k)) || len(v) > m.maxLabel || v == "" || strings.Contains(string(v), "{{") || strings.Contains(string(v), "}}") {
					t.Fatalf("label %s=%q breaks a promise", k, v)
				}
			}
			for k, v := range a.Annotations {
				if len(v) > m.maxAnno || !v.IsValid() || v == "" || strings.Contains(string(v), "{{") || strings.Contains(string(v), "}}") {
					t.Fatalf("annotation %s=%q breaks a promise", k, v)
				}
			}
			if a.StartsAt.After(goldenReceived) || !a.EndsAt.After(a.StartsAt) {
				t.Fatalf("startsAt %v endsAt %v", a.StartsAt, a.EndsAt)
			}
		}
	})
}
