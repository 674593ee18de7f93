package falco

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"
)

const minimal = `{"rule":"R","priority":"Warning","time":"2023-05-25T13:44:05.478445995Z"}`

func decodeOne(t *testing.T, body string) (Event, *Error) {
	t.Helper()
	b := DecodeBody([]byte(body), Limits{})
	if b.Count != 1 || b.Unread != nil {
		t.Fatalf("DecodeBody read %d events (unread: %v), want 1", b.Count, b.Unread)
	}
	if len(b.Errors) == 1 {
		return Event{}, b.Errors[0]
	}
	return b.Events[0], nil
}

func TestDecodeEvent(t *testing.T) {
	ev, err := decodeOne(t, `{
		"hostname": "falco-xczjd",
		"output": "13:44:05.478445995: Critical A shell",
		"priority": "Critical",
		"rule": "Terminal shell in container",
		"source": "syscall",
		"tags": ["container", "shell"],
		"time": "2023-05-25T13:44:05.478445995Z",
		"uuid": "7c3c",
		"output_fields": {
			"evt.time": 1685022245478445995,
			"proc.exe_ino.mtime": 4283228891363909261,
			"k8s.ns.name": "default",
			"container.image.repository": null,
			"proc.pname": "<NA>",
			"proc.cwd": "",
			"user.loginuid": -1,
			"falco.evts_rate_sec": 1846.4,
			"evt.is_open_write": true,
			"ka.response.code": "201",
			"fd.types": ["ipv4", "file"],
			"ka.uri.param[command]": "sh",
			"nested.list": [["a", "b"], [], "c", null, "<NA>"],
			"gcp.userAgent ": "trailing space key"
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	wantTime := time.Date(2023, 5, 25, 13, 44, 5, 478445995, time.UTC)
	if ev.Rule != "Terminal shell in container" || ev.Priority != PriorityCritical || !ev.Time.Equal(wantTime) ||
		ev.Source != "syscall" || ev.Hostname != "falco-xczjd" || ev.UUID != "7c3c" ||
		ev.Output != "13:44:05.478445995: Critical A shell" || strings.Join(ev.Tags, ",") != "container,shell" {
		t.Fatalf("decoded %+v", ev)
	}
	for name, want := range map[string]string{
		"evt.time":                   "1685022245478445995",
		"proc.exe_ino.mtime":         "4283228891363909261",
		"k8s.ns.name":                "default",
		"container.image.repository": "",
		"proc.pname":                 "",
		"proc.cwd":                   "",
		"user.loginuid":              "-1",
		"falco.evts_rate_sec":        "1846.4",
		"evt.is_open_write":          "true",
		"ka.response.code":           "201",
		"fd.types":                   "ipv4,file",
		"ka.uri.param[command]":      "sh",
		"nested.list":                "a,b,c",
		"gcp.userAgent ":             "trailing space key", //nolint:gocritic // Falco really sends this key
	} {
		if got := ev.Fields[name].String(); got != want {
			t.Errorf("field %q = %q, want %q", name, got, want)
		}
	}
	// The JSON form keeps everything exactly, nulls and "<NA>" included.
	js := ev.Fields.JSON()
	for _, want := range []string{`"proc.exe_ino.mtime":4283228891363909261`, `"container.image.repository":null`, `"proc.pname":"<NA>"`, `"fd.types":["ipv4","file"]`} {
		if !strings.Contains(js, want) {
			t.Errorf("Fields.JSON() = %s, missing %s", js, want)
		}
	}
	if !json.Valid([]byte(js)) {
		t.Errorf("Fields.JSON() is not valid JSON: %s", js)
	}
	if got := ev.Fields.Get("container.image.repository", "proc.pname", "k8s.ns.name"); got != "default" {
		t.Errorf("Get skips fields without value: got %q", got)
	}
}

func TestDecodePriority(t *testing.T) {
	for in, want := range map[string]Priority{
		"Emergency": PriorityEmergency, "ALERT": PriorityAlert, "critical": PriorityCritical,
		"Error": PriorityError, "warning": PriorityWarning, "Notice": PriorityNotice,
		"Informational": PriorityInformational, "info": PriorityInformational, "INFO": PriorityInformational,
		"debug": PriorityDebug,
	} {
		ev, err := decodeOne(t, `{"rule":"R","priority":"`+in+`","time":"2023-05-25T13:44:05Z"}`)
		if err != nil {
			t.Errorf("priority %q: %v", in, err)
			continue
		}
		if ev.Priority != want {
			t.Errorf("priority %q = %v, want %v", in, ev.Priority, want)
		}
	}
}

func TestDecodeTime(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		want      time.Time
	}{
		{"nanoseconds", `"2023-05-25T13:44:05.478445995Z"`, time.Date(2023, 5, 25, 13, 44, 5, 478445995, time.UTC)},
		{"trimmed zeros", `"2021-01-11T23:46:19.82302759Z"`, time.Date(2021, 1, 11, 23, 46, 19, 823027590, time.UTC)},
		{"no fraction", `"2001-01-01T01:10:00Z"`, time.Date(2001, 1, 1, 1, 10, 0, 0, time.UTC)},
		{"offset", `"2023-05-25T15:44:05+02:00"`, time.Date(2023, 5, 25, 13, 44, 5, 0, time.UTC)},
		{"integer nanoseconds", `1678882374175850394`, time.Date(2023, 3, 15, 12, 12, 54, 175850394, time.UTC)},
		{"grpc timestamp", `{"seconds":"1685022245","nanos":478445995}`, time.Date(2023, 5, 25, 13, 44, 5, 478445995, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := decodeOne(t, `{"rule":"R","priority":"Debug","time":`+tc.raw+`}`)
			if err != nil {
				t.Fatal(err)
			}
			if !ev.Time.Equal(tc.want) || ev.Time.Location() != time.UTC {
				t.Fatalf("time = %v, want %v", ev.Time, tc.want)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body, field string
		msg               string // substring of Error()
	}{
		{"missing rule", `{"priority":"Debug","time":"2023-05-25T13:44:05Z"}`, "rule", "nothing (the key is missing)"},
		{"empty rule", `{"rule":" ","priority":"Debug","time":"2023-05-25T13:44:05Z"}`, "rule", "a non-empty string"},
		{"rule not a string", `{"rule":5,"priority":"Debug","time":"2023-05-25T13:44:05Z"}`, "rule", "got the number 5"},
		{"missing priority", `{"rule":"R","time":"2023-05-25T13:44:05Z"}`, "priority", "a Falco priority"},
		{"bad priority", `{"rule":"R","priority":"urgent","time":"2023-05-25T13:44:05Z"}`, "priority", `got "urgent"`},
		{"missing time", `{"rule":"R","priority":"Debug"}`, "time", "RFC3339"},
		{"bad time", `{"rule":"R","priority":"Debug","time":"2021-04-13T20:58:00.746609046Z+2"}`, "time", `got "2021-04-13T20:58:00.746609046Z+2"`},
		{"seconds not nanoseconds", `{"rule":"R","priority":"Debug","time":1678882374}`, "time", "seconds or milliseconds"},
		{"float time", `{"rule":"R","priority":"Debug","time":1678882374.5}`, "time", "got the number"},
		{"tags not a list", `{"rule":"R","priority":"Debug","time":"2023-05-25T13:44:05Z","tags":"shell"}`, "tags", "an array of strings"},
		{"tag not a string", `{"rule":"R","priority":"Debug","time":"2023-05-25T13:44:05Z","tags":["a",1]}`, "tags[1]", "a string"},
		{"output not a string", `{"rule":"R","priority":"Debug","time":"2023-05-25T13:44:05Z","output":{}}`, "output", "a JSON object"},
		{"hostname not a string", `{"rule":"R","priority":"Debug","time":"2023-05-25T13:44:05Z","hostname":true}`, "hostname", "a boolean"},
		{"output_fields not an object", `{"rule":"R","priority":"Debug","time":"2023-05-25T13:44:05Z","output_fields":[1]}`, "output_fields", "a JSON array"},
		{"not an object", `[1]`, "", "a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := Decode([]byte(tc.body))
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want 1: %v", len(errs), errs)
			}
			e := errs[0]
			if e.Field != tc.field {
				t.Errorf("Field = %q, want %q", e.Field, tc.field)
			}
			if !strings.Contains(e.Error(), tc.msg) || !strings.HasPrefix(e.Error(), "event 0 (line 1): ") {
				t.Errorf("Error() = %q, want it to start with the event and contain %q", e.Error(), tc.msg)
			}
		})
	}
}

func TestDecodeOptionalKeysMissing(t *testing.T) {
	ev, err := decodeOne(t, minimal)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Output != "" || ev.Source != "" || ev.Hostname != "" || ev.Tags != nil || len(ev.Fields) != 0 {
		t.Fatalf("decoded %+v", ev)
	}
	if ev.Fields.JSON() != "{}" {
		t.Fatalf("Fields.JSON() = %s", ev.Fields.JSON())
	}
	ev, err = decodeOne(t, `{"rule":"R","priority":"Debug","time":"2023-05-25T13:44:05Z","output":null,"source":null,"tags":null,"hostname":null,"output_fields":null}`)
	if err != nil {
		t.Fatalf("nulls for optional keys: %v", err)
	}
	if ev.Output != "" || ev.Tags != nil {
		t.Fatalf("decoded %+v", ev)
	}
}

func TestDecodeKeyCase(t *testing.T) {
	ev, err := decodeOne(t, `{"Rule":"Test Terminate","PRIORITY":"Critical","time":"2019-05-17T15:31:56.746609046Z"}`)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Rule != "Test Terminate" || ev.Priority != PriorityCritical {
		t.Fatalf("decoded %+v", ev)
	}
	ev, err = decodeOne(t, `{"Rule":"wrong","rule":"right","priority":"Debug","time":"2019-05-17T15:31:56Z"}`)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Rule != "right" {
		t.Fatalf("the exact key must win, got %q", ev.Rule)
	}
}

func TestDecodeNestedShape(t *testing.T) {
	ev, err := decodeOne(t, `{
		"output": "x", "priority": "warning", "rule": "Nested", "time": 1678882374175850394,
		"ruleId": "1000000",
		"container": {"id": "abc", "name": "app", "privileged": false,
			"labels": {"io.kubernetes.pod.name": "pod-1", "io.kubernetes.pod.namespace": "ns-1"},
			"mounts": [{"from": "/a", "to": "/b"}]},
		"proc": {"pid": 12345, "args": "sh -c id"},
		"output_fields": {"container.name": "from-output-fields", "k8s": {"pod": {"name": "p"}, "ns.name": "n"}, "empty": {}}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"container.id":   "abc",
		"container.name": "from-output-fields",
		"container.labels.io.kubernetes.pod.name":      "pod-1",
		"container.labels.io.kubernetes.pod.namespace": "ns-1",
		"container.privileged":                         "false",
		"container.mounts":                             `{"from":"/a","to":"/b"}`,
		"proc.pid":                                     "12345",
		"proc.args":                                    "sh -c id",
		"ruleId":                                       "1000000",
		"k8s.pod.name":                                 "p",
		"k8s.ns.name":                                  "n",
		"empty":                                        "{}",
	} {
		if got := ev.Fields[name].String(); got != want {
			t.Errorf("field %q = %q, want %q", name, got, want)
		}
	}
	if ev.Priority != PriorityWarning {
		t.Errorf("priority = %v", ev.Priority)
	}
}

func TestFraming(t *testing.T) {
	ev := func(rule string) string {
		return `{"rule":"` + rule + `","priority":"Debug","time":"2023-05-25T13:44:05Z"}`
	}
	for _, tc := range []struct {
		name  string
		body  string
		rules []string // valid events, in order
		bad   []string // "index:line" of errors, in order
	}{
		{"one object", ev("a"), []string{"a"}, nil},
		{"pretty printed", "{\n  \"rule\": \"a\",\n  \"priority\": \"Debug\",\n  \"time\": \"2023-05-25T13:44:05Z\"\n}\n", []string{"a"}, nil},
		{"array", "[" + ev("a") + "," + ev("b") + "]", []string{"a", "b"}, nil},
		{"pretty array", "[\n" + ev("a") + ",\n" + ev("b") + "\n]\n", []string{"a", "b"}, nil},
		{"empty array", "[]", nil, nil},
		{"ndjson", ev("a") + "\n" + ev("b") + "\n\n" + ev("c") + "\n", []string{"a", "b", "c"}, nil},
		{"concatenated", ev("a") + ev("b"), []string{"a", "b"}, nil},
		{"byte order mark", "\xef\xbb\xbf" + ev("a"), []string{"a"}, nil},
		{"truncated line", ev("a") + "\n" + `{"rule":"b","priority":` + "\n" + ev("c"), []string{"a", "c"}, []string{"1:2"}},
		{"unterminated string", ev("a") + "\n" + `{"rule":"b` + "\n" + ev("c"), []string{"a", "c"}, []string{"1:2"}},
		{"garbage line", "hello\n" + ev("a"), []string{"a"}, []string{"0:1"}},
		{"invalid event between", ev("a") + "\n" + `{"rule":"b"}` + "\n" + ev("c"), []string{"a", "c"}, []string{"1:2"}},
		{"number in array", "[" + ev("a") + ",7," + ev("b") + "]", []string{"a", "b"}, []string{"1:1"}},
		{"unclosed array", "[" + ev("a") + ",", []string{"a"}, []string{"1:1"}},
		{"garbage after array", "[" + ev("a") + "] x", []string{"a"}, []string{"1:1"}},
		{"empty", "  \n ", nil, nil},
		// Line layout says nothing: the grammar decides.
		{"nested object starting a line", "{\"rule\":\"a\",\"priority\":\"Debug\",\"time\":\"2023-05-25T13:44:05Z\",\"container\":\n{\"name\":\"c\"}\n}", []string{"a"}, nil},
		{"unindented nested objects", "{\n\"rule\": \"a\",\n\"priority\": \"warning\",\n\"time\": 1678882374175850394,\n\"container\": {\n\"labels\": {\n\"x\": \"y\"\n}\n},\n\"mounts\": [\n{\"from\": \"/a\"}\n]\n}\n" + ev("b"), []string{"a", "b"}, nil},
		{"missing comma in array", "[" + ev("a") + " " + ev("b") + "]", []string{"a"}, []string{"1:1"}},
		{"broken element contained", "[" + ev("a") + ",\n{\"rule\": x, \"y\": [1]},\n" + ev("c") + "]", []string{"a", "c"}, []string{"1:2"}},
		{"broken element not contained", "[" + ev("a") + ",\n{\"rule\": \"b\", [}\n", []string{"a"}, []string{"1:2", "2:2"}},
		{"trailing comma", "[" + ev("a") + ",]", []string{"a"}, []string{"1:1"}},
		{"leading comma", "[," + ev("a") + "]", []string{"a"}, []string{"0:1"}},
		{"pretty object after a broken line", `{"rule":"a",` + "\n{\n  \"rule\": \"b\", \"priority\": \"Debug\", \"time\": \"2023-05-25T13:44:05Z\"\n}\n" + ev("c"), []string{"b", "c"}, []string{"0:1"}},
		{"lines swallowed by a broken one", `{"a":[` + "\n" + `{"a":[` + "\n" + ev("c") + "\n" + ev("d"), []string{"c", "d"}, []string{"0:1", "1:2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, errs := Decode([]byte(tc.body))
			var rules []string
			for _, e := range evs {
				rules = append(rules, e.Rule)
			}
			if strings.Join(rules, ",") != strings.Join(tc.rules, ",") {
				t.Errorf("valid events %v, want %v", rules, tc.rules)
			}
			var bad []string
			for _, e := range errs {
				bad = append(bad, itoa(e.Index)+":"+itoa(e.Line))
			}
			if strings.Join(bad, ",") != strings.Join(tc.bad, ",") {
				t.Errorf("errors at %v, want %v (%v)", bad, tc.bad, errs)
			}
		})
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestIndexesAreSequential(t *testing.T) {
	body := minimal + "\nnope\n" + minimal + "\n" + minimal
	b := DecodeBody([]byte(body), Limits{})
	if b.Count != 4 || len(b.Events) != 3 || b.Rejected != 1 {
		t.Fatalf("read %d events, %d valid, %d rejected", b.Count, len(b.Events), b.Rejected)
	}
	for i, want := range []int{0, 2, 3} {
		if ev := b.Events[i]; ev.Index != want || ev.Line != want+1 {
			t.Errorf("event %d: Index %d, Line %d; want %d, %d", i, ev.Index, ev.Line, want, want+1)
		}
	}
	if e := b.Errors[0]; e.Index != 1 || e.Line != 2 {
		t.Errorf("error at event %d line %d, want 1, 2", e.Index, e.Line)
	}
}

func TestLooksLikeJSON(t *testing.T) {
	for body, want := range map[string]bool{
		minimal: true, " [": true, "\n{": true,
		"10:52:54.175850394: Warning A shell": false, "": false, "null": false,
	} {
		if got := LooksLikeJSON([]byte(body)); got != want {
			t.Errorf("LooksLikeJSON(%q) = %v", body, got)
		}
	}
}

func TestParsePriority(t *testing.T) {
	for i := range priorityNames {
		p := Priority(i)
		got, err := ParsePriority(strings.ToLower(p.String()))
		if err != nil || got != p {
			t.Errorf("ParsePriority(%q) = %v, %v", p, got, err)
		}
	}
	if _, err := ParsePriority("verbose"); err == nil || !strings.Contains(err.Error(), "Emergency, Alert") {
		t.Errorf("ParsePriority(verbose) error = %v", err)
	}
	if !PriorityCritical.AtLeast(PriorityWarning) || PriorityNotice.AtLeast(PriorityWarning) || !PriorityWarning.AtLeast(PriorityWarning) {
		t.Error("AtLeast compares severity the wrong way")
	}
}

// corpusPath finds ../shared/falco-events/real-events.jsonl beside the
// repository, as CI lays it out.
func corpusPath(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "falco-events", "real-events.jsonl")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// TestCorpus decodes every real Falco alert of the shared corpus.
func TestCorpus(t *testing.T) {
	path := corpusPath(t)
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Skipf("corpus %s not found: it lives beside the repository as ../shared/falco-events/real-events.jsonl", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(strings.TrimSpace(string(data)), "\n") + 1
	evs, errs := Decode(data)
	for _, e := range errs {
		t.Errorf("%s: %v", path, e)
	}
	if len(evs) != lines {
		t.Fatalf("decoded %d events from %d lines", len(evs), lines)
	}
	for i, ev := range evs {
		if ev.Rule == "" || ev.Time.IsZero() || !json.Valid([]byte(ev.Fields.JSON())) {
			t.Errorf("line %d decoded badly: %+v", i+1, ev)
		}
	}
}

func TestInvalidUTF8BecomesReplacementCharacters(t *testing.T) {
	ev, err := decodeOne(t, "{\"rule\":\"R\xff\",\"priority\":\"Debug\",\"time\":\"2023-05-25T13:44:05Z\",\"output_fields\":{\"proc.cmdline\":\"a\xfe\\u00e9b\",\"x\":\"c\xffd\"}}")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{ev.Rule, ev.Fields["proc.cmdline"].String(), ev.Fields["x"].String(), ev.Fields.JSON()} {
		if !utf8.ValidString(s) || !strings.Contains(s, "\uFFFD") {
			t.Errorf("%q: invalid UTF-8 must become U+FFFD", s)
		}
	}
}

func TestIntern(t *testing.T) {
	for _, s := range []string{"", "container.id", "container.id", "x", strings.Repeat("l", maxInterned+1), "container.id"} {
		if got := intern([]byte(s)); got != s {
			t.Fatalf("intern(%q) = %q", s, got)
		}
	}
	a := intern([]byte("proc.cmdline"))
	if b := intern([]byte("proc.cmdline")); unsafe.StringData(a) != unsafe.StringData(b) {
		t.Error("a string seen a moment ago was allocated again")
	}
}

// TestTrimExcerptCutsBetweenCharacters: excerpts go into error messages
// answered as JSON, so a cut must not split a UTF-8 character.
func TestTrimExcerptCutsBetweenCharacters(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"short", "  abc  ", "abc"},
		{"exactly 80", strings.Repeat("a", 80), strings.Repeat("a", 80)},
		{"ascii", strings.Repeat("a", 81), strings.Repeat("a", 80) + "…"},
		{"inside a character", strings.Repeat("a", 79) + "éé", strings.Repeat("a", 79) + "…"},
		{"at a character", strings.Repeat("a", 80) + "é", strings.Repeat("a", 80) + "…"},
		{"four-byte characters", strings.Repeat("😀", 21), strings.Repeat("😀", 20) + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := trimExcerpt(tc.in)
			if got != tc.want || !utf8.ValidString(got) {
				t.Errorf("trimExcerpt(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
