package mapping

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/prometheus/common/model"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
)

// shapesEvent is the event the per-shape tests render.
const shapesEvent = `{"rule":"Terminal shell in container","priority":"Critical","source":"syscall",
"hostname":"node-1","time":"2026-01-02T03:04:05.123456789Z","output":"A shell was spawned",
"tags":["container","shell","mitre_execution"],
"output_fields":{"container.id":"abc123","container.name":"app","k8s.pod.name":"web-1",
"k8s.ns.name":"prod","proc.cmdline":"sh -c id","ka.target.resource":"pods","user.name":null,
"ka.user.name":"admin","evt.num":42}}`

// shapesData is the Data for shapesEvent, with rendered labels as
// annotations see them.
func shapesData(t *testing.T) *Data {
	t.Helper()
	d := newData(event(t, shapesEvent), goldenReceived, mustDefault(t))
	d.labels = model.LabelSet{"pod_name": "web-1", "namespace": "prod", "empty": ""}
	d.Labels = map[string]string{"pod_name": "web-1", "namespace": "prod", "empty": ""}
	return d
}

func parseTemplate(t *testing.T, src string) *template.Template {
	t.Helper()
	tmpl, err := template.New("t").Option("missingkey=zero").Funcs(funcs).Parse(src)
	if err != nil {
		t.Fatalf("parse %q: %v", src, err)
	}
	return tmpl
}

// TestFastShapes renders each template shape the fast path compiles, and
// checks it gives what text/template gives, and what it should.
func TestFastShapes(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"plain text", "plain text"},
		{"{{ .Rule }}", "Terminal shell in container"},
		{"{{ .Priority }}|{{ .Severity }}|{{ .Source }}|{{ .Hostname }}", "Critical|critical|syscall|node-1"},
		{"{{ .Output }}|{{ .Message }}|{{ .UUID }}", "A shell was spawned||"},
		{"{{ $.Rule }}", "Terminal shell in container"},
		{"{{ (.Rule) }}", "Terminal shell in container"},
		{`{{ "literal" }} {{ true }} {{ false }}`, "literal true false"},
		{"{{/* comment */}}x{{- /* trimmed */ -}} y", "xy"},
		{`{{ .Field "user.name" "ka.user.name" }}`, "admin"},
		{`{{ .Field "missing" }}`, ""},
		{`{{ .Field }}`, ""},
		{`{{ .Field "evt.num" }}`, "42"},
		{`{{ "k8s.pod.name" | .Field }}`, "web-1"},
		{`{{ $.Field "k8s.ns.name" }}`, "prod"},
		{`{{ .Field (print "k8s.pod.name") }}`, "web-1"}, // print falls back; see TestFastFallsBack
		{"{{ .FieldsJSON }}", `{"container.id":"abc123","container.name":"app","evt.num":42,"k8s.ns.name":"prod","k8s.pod.name":"web-1","ka.target.resource":"pods","ka.user.name":"admin","proc.cmdline":"sh -c id","user.name":null}`},
		{`{{ .HasTag "shell" }} {{ .HasTag "nope" }}`, "true false"},
		{`{{ if .HasTag "shell" }}y{{ else }}n{{ end }}`, "y"},
		{`{{ if "x" }}x{{ end }}{{ if "" }}empty{{ end }}{{ if true }}t{{ end }}{{ if false }}f{{ end }}`, "xt"},
		{"{{ or .Message .Output }}", "A shell was spawned"},
		{`{{ or .Message "" }}|`, "|"},
		{`{{ or .Field "fallback" }}`, "fallback"}, // .Field as an argument is called without arguments
		{"{{ and .Rule .Message }}|{{ and .Rule .Source }}", "|syscall"},
		{`{{ and (eq .Source "k8s_audit") .Rule }}`, "false"},
		{`{{ and (eq .Source "syscall") .Rule }}`, "Terminal shell in container"},
		{`{{ or (.Field "nope") (and (eq (.Field "ka.target.resource") "pods") (.Field "k8s.ns.name")) "none" }}`, "prod"},
		{`{{ or (.Field "nope") (and (eq (.Field "ka.target.resource") "nodes") (.Field "k8s.ns.name")) "none" }}`, "none"},
		{"{{ not .Message }} {{ not .Rule }} {{ not .Tags }} {{ not .Time }} {{ not $ }}", "true false false false false"},
		{`{{ eq .Source "k8s_audit" "syscall" }} {{ eq .Source "a" "b" }} {{ eq true (.HasTag "shell") }}`, "true false true"},
		{`{{ ne .Source "syscall" }} {{ ne .Source "k8s" }} {{ ne false true }}`, "false true true"},
		{`{{ if ne (.Field "container.id") "host" -}} in {{ .Field "container.name" }} {{- end }}`, "in app"},
		{`{{ if .Message }}m{{ else if .Output }}o{{ else }}none{{ end }}`, "o"},
		{`{{ if and .Rule (not .Message) }}ok{{ end }}`, "ok"},
		{`{{ if .Tags }}tags{{ end }}{{ if .Time }} time{{ end }}{{ if $ }} root{{ end }}`, "tags time root"},
		{`{{ with .Field "container.id" }}[{{ . }}]{{ else }}none{{ end }}`, "[abc123]"},
		{`{{ with .Field "nope" }}[{{ . }}]{{ else }}none {{ .Hostname }}{{ end }}`, "none node-1"},
		{`{{ with .Field "nope" }}x{{ else with .Hostname }}on {{ . }}{{ end }}`, "on node-1"},
		{`{{ with .Field "k8s.pod.name" }}{{ $.Rule }}/{{ . }}{{ with $.Field "k8s.ns.name" }}@{{ . }}{{ end }}{{ end }}`, "Terminal shell in container/web-1@prod"},
		{`{{ with .Field "container.id" }}{{ if ne . "host" }}{{ . }}{{ end }}{{ end }}`, "abc123"},
		{`{{ with .Field "container.id" }}{{ or . "x" }}{{ eq . "abc123" }}{{ end }}`, "abc123true"},
		{`{{ with $ }}{{ .Rule }}{{ end }}`, "Terminal shell in container"},
		{"{{ toLower .Priority }} {{ toUpper .Source }} {{ title .Source }} {{ trimSpace `  x  ` }}", "critical SYSCALL Syscall x"},
		{"{{ camelCase .Rule }}", "TerminalShellInContainer"},
		{"{{ .Rule | toLower | camelCase }}", "TerminalShellInContainer"},
		{"{{ or .Message .Output | toUpper }}", "A SHELL WAS SPAWNED"},
		{`{{ join "," .Tags }} {{ .Tags | join ";" }}`, "container,shell,mitre_execution container;shell;mitre_execution"},
		{`{{ reReplaceAll "[aeiou]+" "_" .Rule }}`, "T_rm_n_l sh_ll _n c_nt_n_r"},
		{`{{ match "^Term" .Rule }} {{ if match "shell" .Output }}shell{{ end }}`, "true shell"},
		{`{{ urlUnescape "a%20b" }}`, "a b"},
		{`{{ .Time.Format "2006-01-02T15:04:05.999999999Z07:00" }}`, "2026-01-02T03:04:05.123456789Z"},
		{`{{ .ReceivedAt.UTC.Format "15:04" }}`, "00:00"},
		{`{{ "2006" | .Time.Format }}`, "2026"},
		{"{{ .Labels.pod_name }}|{{ .Labels.missing }}|{{ .Labels.empty }}|{{ $.Labels.namespace }}", "web-1|||prod"},
		{"{{ if .Labels }}some{{ end }}{{ with .Labels.namespace }} in {{ . }}{{ end }}", "some in prod"},
	} {
		t.Run(tc.src, func(t *testing.T) {
			tmpl := parseTemplate(t, tc.src)
			var want bytes.Buffer
			if err := tmpl.Execute(&want, shapesData(t)); err != nil {
				t.Fatalf("text/template: %v", err)
			}
			if want.String() != tc.want {
				t.Fatalf("text/template gives %q, the test expects %q", want.String(), tc.want)
			}
			f, why := compileFast(tmpl, funcs)
			if f == nil {
				if strings.Contains(tc.src, "print") {
					return
				}
				t.Fatalf("not compiled: %s", why)
			}
			got, ok := f.run(new(output), shapesData(t))
			if !ok {
				t.Fatal("the fast path gave up")
			}
			if got != tc.want {
				t.Errorf("fast path gives %q, text/template %q", got, tc.want)
			}
		})
	}
}

// TestFastFallsBack shows what the fast path leaves to text/template: at
// compile time what it does not model, at run time a function that fails.
// Either way Map's result is text/template's.
func TestFastFallsBack(t *testing.T) {
	for _, tc := range []struct{ src, why string }{
		{"{{ range .Tags }}[{{ . }}]{{ end }}", "RangeNode"},
		{"{{ $r := .Rule }}{{ $r }}", "variables"},
		{`{{ printf "%s@%s" .Rule .Hostname }}`, "function printf"},
		{`{{ .Field (print "k8s.pod.name") }}`, "function print"},
		{"{{ len .Tags }}", "function len"},
		{`{{ index .Labels "pod_name" }}`, "function index"},
		{"{{ .Tags }}", "printing []string"},
		{"{{ .Time }}", "printing time.Time"},
		{"{{ .Labels }}", "printing map"},
		{"{{ $ }}x", "printing *Data"},
		{`{{ with .HasTag "shell" }}{{ . }}{{ end }}`, "with over bool"},
		{`{{ with .Tags }}{{ . }}{{ end }}`, "with over []string"},
		{"{{ eq .Source 1 }}", "NumberNode"},
		{`{{ eq .Source (.HasTag "x") }}`, "eq of bool"},
		{`{{ eq .Source }}`, "eq with 1 arguments"},
		{`{{ toLower .Tags }}`, "toLower of []string"},
		{`{{ safeHtml .Rule }}`, "function safeHtml of type"},
		{`{{ stringSlice .Rule }}`, "function stringSlice of type"},
		{`{{ toLower .HasTag "shell" }}`, "HasTag with 0 arguments"},
		{"{{ .Rule.Length }}", "field Length of string"},
		{`{{ .Rule "x" }}`, "arguments to field Rule"},
		{`{{ .Labels.pod_name.x }}`, "field x of string"},
		{`{{ .Time.Unix }}`, "field Unix of time.Time"},
		{`{{ .Nope }}`, "field Nope of *Data"},
		{`{{ with .Field "k8s.pod.name" }}{{ .Rule }}{{ end }}`, "field Rule of string"},
		{`{{ define "x" }}y{{ end }}{{ template "x" }}`, "TemplateNode"},
		{`{{ "a" "b" }}`, "argument to a non-function"},
		{`{{ .Rule | (.Field) }}`, "argument to a non-function"},
		{`{{ nil | .Field }}`, "NilNode"},
		{`{{ (.Field "a").x }}`, "ChainNode"},
	} {
		t.Run(tc.src, func(t *testing.T) {
			tmpl := parseTemplate(t, tc.src)
			f, why := compileFast(tmpl, funcs)
			if f != nil {
				t.Fatal("compiled, but must fall back")
			}
			if !strings.Contains(why, tc.why) {
				t.Errorf("falls back because %q, want %q", why, tc.why)
			}
			if strings.HasPrefix(tc.src, "{{ $ }}") {
				return // prints a pointer, different for each Data
			}
			c := compiled{tmpl: tmpl}
			got, gotErr := c.execute(new(scratch), shapesData(t))
			var want bytes.Buffer
			wantErr := tmpl.Execute(&want, shapesData(t))
			if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || gotErr == nil && got != want.String() {
				t.Errorf("got %q, %v; text/template %q, %v", got, gotErr, want.String(), wantErr)
			}
		})
	}
	for _, src := range []string{
		`{{ join "," .Rule }}`,              // join returns an error
		`{{ reReplaceAll "(" "" .Rule }}`,   // reReplaceAll panics
		`x{{ reReplaceAll "(" "" .Rule }}y`, // after some output
		`{{ .Rule | or (reReplaceAll "(" "" .Rule) }}`,
		`{{ match "(" .Rule }}`,   // match returns an error
		`{{ urlUnescape "%zz" }}`, // urlUnescape returns an error
	} {
		t.Run(src, func(t *testing.T) {
			tmpl := parseTemplate(t, src)
			f, why := compileFast(tmpl, funcs)
			if f == nil {
				t.Fatalf("not compiled: %s", why)
			}
			if _, ok := f.run(new(output), shapesData(t)); ok {
				t.Fatal("the fast path did not give up on a failing function")
			}
			c := compiled{tmpl: tmpl, fast: f}
			got, err := c.execute(new(scratch), shapesData(t))
			if err == nil || !strings.Contains(err.Error(), "error calling") {
				t.Errorf("got %q, %v; want text/template's error", got, err)
			}
		})
	}
}

// TestFastCoversData checks that every exported field and method of Data
// has a fast path, so that a new one is not left to text/template unseen.
func TestFastCoversData(t *testing.T) {
	typ := reflect.TypeFor[*Data]()
	var names []string
	for i := range typ.NumMethod() {
		names = append(names, typ.Method(i).Name)
	}
	for i := range typ.Elem().NumField() {
		if f := typ.Elem().Field(i); f.IsExported() {
			names = append(names, f.Name)
		}
	}
	for _, name := range names {
		src := "{{ if ." + name + " }}y{{ end }}"
		if name == "HasTag" {
			src = `{{ .HasTag "x" }}`
		}
		if _, why := compileFast(parseTemplate(t, src), funcs); why != "" {
			t.Errorf("%s: %s", src, why)
		}
	}
}

// mappingFiles are the shipped and example mappings, and the test ones.
func mappingFiles(t testing.TB) []string {
	var files []string
	for _, g := range []string{"../../mapping/*.yaml", "../../examples/*mapping*.yaml", "testdata/mappings/*.yaml"} {
		m, err := filepath.Glob(g)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 3 {
		t.Fatalf("mapping files not found: %v", files)
	}
	return files
}

// fastAndSlow compiles a mapping file twice: with fast paths and without.
func fastAndSlow(t testing.TB, file string) (fast, slow *Mapping) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if fast, err = compileMapping(file, data, true); err != nil {
		t.Fatal(err)
	}
	if slow, err = compileMapping(file, data, false); err != nil {
		t.Fatal(err)
	}
	return fast, slow
}

// templates returns every compiled template of m.
func (m *Mapping) templates() []*compiled {
	var out []*compiled
	sets := [][]compiled{m.labels, m.annotations}
	for _, o := range m.overrides {
		sets = append(sets, o.labels, o.annotations)
	}
	for _, set := range sets {
		for i := range set {
			out = append(out, &set[i])
		}
	}
	if m.generatorURL != nil {
		out = append(out, m.generatorURL)
	}
	return out
}

// corpusEvents are the fixtures' events and those of the shared corpus of
// real Falco alerts, when it is there.
func corpusEvents(t testing.TB) []falco.Event {
	t.Helper()
	files, err := filepath.Glob("testdata/events/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	files = append(files, filepath.Join("..", "..", "..", "shared", "falco-events", "real-events.jsonl"))
	var evs []falco.Event
	for _, f := range files {
		data, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			t.Logf("%s not found: ../shared/falco-events lives beside the repository", f)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		e, _ := falco.Decode(data)
		evs = append(evs, e...)
	}
	return evs
}

// sameResult compares two results of Map in full.
func sameResult(a, b Result) string {
	if !reflect.DeepEqual(a.Alert, b.Alert) || a.Dropped != b.Dropped || fmt.Sprint(a.Errors) != fmt.Sprint(b.Errors) {
		return fmt.Sprintf("%+v dropped=%q errors=%v\n  vs %+v dropped=%q errors=%v", a.Alert, a.Dropped, a.Errors, b.Alert, b.Dropped, b.Errors)
	}
	return ""
}

// TestFastSameAsTemplate maps every event of the fixtures and of the shared
// corpus with every shipped, example and test mapping, once with the fast
// paths and once with text/template alone, and compares the results.
func TestFastSameAsTemplate(t *testing.T) {
	evs := corpusEvents(t)
	if len(evs) < 40 {
		t.Logf("only %d events: is ../shared/falco-events/real-events.jsonl there?", len(evs))
	}
	for _, file := range mappingFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			fast, slow := fastAndSlow(t, file)
			n, nFast := 0, 0
			for _, c := range fast.templates() {
				n++
				if c.fast != nil {
					nFast++
				}
			}
			for _, c := range slow.templates() {
				if c.fast != nil {
					t.Fatal("the text/template mapping has a fast path")
				}
			}
			t.Logf("%d of %d templates compiled", nFast, n)
			if !strings.Contains(file, "testdata") && nFast != n {
				t.Errorf("only %d of %d templates of a shipped mapping compiled", nFast, n)
			}
			alerts := 0
			for i := range evs {
				// Before and after the event's own time, so that startsAt
				// takes both branches.
				for _, received := range []time.Time{goldenReceived, evs[i].Time.Add(-time.Minute)} {
					got, want := fast.Map(&evs[i], received), slow.Map(&evs[i], received)
					if diff := sameResult(got, want); diff != "" {
						t.Fatalf("event %d (%s): fast path and text/template differ:\n  %s", i, evs[i].Rule, diff)
					}
					if got.Alert != nil {
						alerts++
					}
				}
			}
			if alerts == 0 {
				t.Error("no alert made: nothing compared")
			}
		})
	}
}

// TestMapConcurrent maps the corpus from several goroutines at once with
// one mapping (run with -race): compiled templates and the pooled scratch
// must not share state between events.
func TestMapConcurrent(t *testing.T) {
	evs := corpusEvents(t)
	fast, slow := fastAndSlow(t, "testdata/mappings/shapes.yaml")
	want := make([]Result, len(evs))
	for i := range evs {
		want[i] = slow.Map(&evs[i], goldenReceived)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range evs {
				if diff := sameResult(fast.Map(&evs[i], goldenReceived), want[i]); diff != "" {
					t.Errorf("event %d: %s", i, diff)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestOutput checks the writer of fast templates: one piece comes back as
// it is, more are joined, empty ones do not count.
func TestOutput(t *testing.T) {
	for _, tc := range []struct {
		pieces []string
		want   string
	}{
		{nil, ""},
		{[]string{""}, ""},
		{[]string{"a"}, "a"},
		{[]string{"", "a", ""}, "a"},
		{[]string{"a", "b"}, "ab"},
		{[]string{"a", "", "b", "c"}, "abc"},
	} {
		var o output
		for range 2 { // the second time after a reset, reusing the buffer
			o.WriteString("junk")
			o.WriteString("more")
			o.reset()
			for _, p := range tc.pieces {
				o.WriteString(p)
			}
			if got := o.String(); got != tc.want {
				t.Errorf("%q: got %q, want %q", tc.pieces, got, tc.want)
			}
		}
	}
}
