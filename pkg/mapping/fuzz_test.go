package mapping

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	"github.com/prometheus/common/model"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
)

// FuzzMap decodes arbitrary bodies and maps every valid event with the
// shipped mapping: no input may panic, and every alert must keep the
// promises the mapping makes (valid names, limits, no template delimiters).
// Every mapping file is also compiled without fast paths, as the oracle:
// the fast paths must give text/template's results exactly.
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
	var fast, slow []*Mapping
	for _, file := range mappingFiles(f) {
		a, b := fastAndSlow(f, file)
		fast, slow = append(fast, a), append(slow, b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, _ := falco.Decode(body)
		for i := range evs {
			for j := range fast {
				got, want := fast[j].Map(&evs[i], goldenReceived), slow[j].Map(&evs[i], goldenReceived)
				if diff := sameResult(got, want); diff != "" {
					t.Fatalf("%s: fast path and text/template differ:\n  %s", fast[j].Name(), diff)
				}
			}
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

// FuzzFastTemplate compiles arbitrary templates and, where the fast path
// takes one, renders it on every fixture event both ways: output and
// failure must be text/template's. Its corpus is in
// testdata/fuzz/FuzzFastTemplate; the shapes mapping seeds it too.
func FuzzFastTemplate(f *testing.F) {
	_, shapes := fastAndSlow(f, "testdata/mappings/shapes.yaml")
	for _, c := range shapes.templates() {
		f.Add(c.tmpl.Root.String())
	}
	evs := corpusEvents(f)
	if len(evs) > 20 {
		evs = evs[:20]
	}
	m, err := Default()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, src string) {
		tmpl, err := template.New("t").Option("missingkey=zero").Funcs(funcs).Parse(src)
		if err != nil {
			return
		}
		fast, _ := compileFast(tmpl, funcs)
		if fast == nil {
			return
		}
		c := compiled{tmpl: tmpl, fast: fast}
		var sc scratch
		var want bytes.Buffer
		for i := range evs {
			d := newData(&evs[i], goldenReceived, m)
			d.labels = model.LabelSet{"alertname": labelValue(evs[i].Rule), "empty": ""}
			d.Labels = map[string]string{"alertname": evs[i].Rule, "empty": ""}
			got, gotErr := c.execute(&sc, d)
			want.Reset()
			wantErr := tmpl.Execute(&want, d)
			if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || wantErr == nil && got != want.String() {
				t.Fatalf("event %d: fast path gives %q, %v; text/template %q, %v", i, got, gotErr, want.String(), wantErr)
			}
		}
	})
}
