package falco

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecode checks the decoder against encoding/json as the oracle: a
// body is valid exactly when encoding/json reads it as one array or a
// stream of values; then the events are the same values, in order, and
// every valid event holds the strings and fields encoding/json finds. It
// also bounds the cost of any body: bytes allocated and bytes read by the
// tokenizer stay within a small multiple of the body's size. Its corpus is
// in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		minimal,
		"[" + minimal + "," + minimal + "]",
		minimal + "\n" + minimal + "\n",
		`{"rule":"R","priority":"info","time":1678882374175850394,"container":{"labels":{"a.b":"c"}},"proc":{"pid":1}}`,
		`{"rule":"R","priority":"Debug","time":"2023-05-25T13:44:05Z","output_fields":{"a":null,"b":"<NA>","c":[1,"x",null],"d":18446744073709551615}}`,
		`{"Rule":"R","priority":"Debug","time":{"seconds":"1","nanos":2}}`,
		"[{\"rule\":\n{", `{"rule":"\u00e9\ud83d\ude00","priority":"DEBUG","time":"2023-05-25T13:44:05Z","tags":[]}`,
		"{\n\"rule\": \"R\",\n\"priority\": \"warning\",\n\"time\": 1678882374175850394,\n\"container\": {\n\"labels\": {\n\"a\": \"b\"\n}\n},\n\"mounts\": [\n{\"from\": \"/a\"}\n]\n}",
		"[" + minimal + " " + minimal + "]",
		`{"rule":"a","RULE":"b","Rule":"c","priority":"Debug","time":"2023-05-25T13:44:05Z","output_fields":{"x":1,"x":2}}`,
		`{"rule":"R\ud800","priority":"Debug","time":"2023-05-25T13:44:05Z","x.y":1,"x":{"y":2}}`,
		"{\"a\":[\n{\"a\":[\n{\"a\":[\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		d := &decoder{}
		b := decodeBodyWith(d, body, Limits{})
		runtime.ReadMemStats(&after)
		// In proportion to the body, but for the errors kept, each
		// described in words (about 500 bytes; at most MaxErrors of
		// them, so bounded whatever the body).
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(64*len(body)+256<<10+768*len(b.Errors)) {
			t.Fatalf("decoding %d bytes allocated %d bytes, %d errors kept", len(body), alloc, len(b.Errors))
		}
		if d.scanned > 3*len(body)+64 {
			t.Fatalf("decoding %d bytes read %d bytes", len(body), d.scanned)
		}
		checkAccounting(t, b)

		values, valid := oracle(body)
		syntaxErrs := b.syntaxErrors
		if b.Unread != nil {
			syntaxErrs++
		}
		if valid != (syntaxErrs == 0) {
			t.Fatalf("encoding/json says valid=%v; decoder found %d syntax errors: %v %v", valid, syntaxErrs, b.Errors[:min(len(b.Errors), 5)], b.Unread)
		}
		if !valid {
			return
		}
		if b.Count != len(values) {
			t.Fatalf("encoding/json reads %d values, the decoder %d", len(values), b.Count)
		}
		for _, ev := range b.Events {
			want := refEvent(t, values[ev.Index])
			compareEvent(t, ev, want)
		}
	})
}

// checkAccounting checks that every event read is valid or rejected, in
// order, with errors that say where and what.
func checkAccounting(t *testing.T, b *Body) {
	t.Helper()
	if len(b.Events)+b.Rejected != b.Count {
		t.Fatalf("%d valid + %d rejected != %d read", len(b.Events), b.Rejected, b.Count)
	}
	seen := make([]bool, b.Count)
	line := 1
	for _, ev := range b.Events {
		if ev.Index < 0 || ev.Index >= b.Count || seen[ev.Index] {
			t.Fatalf("bad or repeated index %d", ev.Index)
		}
		seen[ev.Index] = true
		if ev.Line < line {
			t.Fatalf("event %d starts on line %d, before line %d", ev.Index, ev.Line, line)
		}
		line = ev.Line
		if ev.Rule == "" || ev.Priority < PriorityEmergency || ev.Priority > PriorityDebug {
			t.Fatalf("valid event without rule or priority: %+v", ev)
		}
		if js := ev.Fields.JSON(); !json.Valid([]byte(js)) || !utf8.ValidString(js) {
			t.Fatalf("Fields.JSON() is not valid JSON in UTF-8: %q", js)
		}
		for k, v := range ev.Fields {
			if !utf8.ValidString(k) || !utf8.ValidString(v.String()) {
				t.Fatalf("field %q = %q is not UTF-8", k, v.String())
			}
		}
	}
	for _, e := range b.Errors {
		if e.Index < 0 || e.Index >= b.Count || seen[e.Index] || e.Expected == "" || e.Line < 1 {
			t.Fatalf("bad error: %#v", e)
		}
		seen[e.Index] = true
	}
	if b.Unread != nil && (b.Unread.Index != b.Count || b.Unread.Expected == "") {
		t.Fatalf("bad unread error after %d events: %#v", b.Count, b.Unread)
	}
}

// oracle reads body with encoding/json: the values of an array body, or
// of a stream of values, and whether the body is valid.
func oracle(body []byte) ([]json.RawMessage, bool) {
	body = body[skipBOM(body):]
	if p := skipSpace(body, 0); p < len(body) && body[p] == '[' {
		var values []json.RawMessage
		if err := json.Unmarshal(body, &values); err != nil {
			return nil, false
		}
		return values, true
	}
	var values []json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		var v json.RawMessage
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return values, true
		}
		if err != nil {
			return nil, false
		}
		values = append(values, v)
	}
}

type ref struct {
	strings map[string]string // Falco's string keys as encoding/json decodes them
	fields  map[string]string // field name -> text
	tags    []string          // non-empty tags
}

// refEvent decodes an event with encoding/json, walking its members in
// order: for Falco's keys an exact name wins over a case variant, the last
// of equals winning; nested objects flatten to dotted names, output_fields
// winning over them.
func refEvent(t *testing.T, raw json.RawMessage) ref {
	t.Helper()
	r := ref{strings: map[string]string{}, fields: map[string]string{}}
	var chosen [numKeys]struct {
		raw   json.RawMessage
		exact bool
		set   bool
	}
	flat := map[string]string{}
	walk(t, raw, func(name string, v json.RawMessage) {
		for k, n := range keyNames {
			exact := name == n
			if !exact && !strings.EqualFold(name, n) {
				continue
			}
			if c := &chosen[k]; !c.set || exact || !c.exact {
				c.raw, c.exact, c.set = v, exact, true
			}
			return
		}
		flatten(t, name, v, flat)
	})
	for k, c := range chosen {
		if !c.set {
			continue
		}
		var s string
		if json.Unmarshal(c.raw, &s) == nil {
			r.strings[keyNames[k]] = s
		}
	}
	for k, v := range flat {
		r.fields[k] = v
	}
	if tg := chosen[keyTags]; tg.set {
		var tags []string
		_ = json.Unmarshal(tg.raw, &tags)
		for _, tag := range tags {
			if tag != "" {
				r.tags = append(r.tags, tag)
			}
		}
	}
	if of := chosen[keyOutputFields]; of.set && len(of.raw) > 0 && of.raw[0] == '{' {
		walk(t, of.raw, func(name string, v json.RawMessage) { flatten(t, name, v, r.fields) })
	}
	return r
}

func flatten(t *testing.T, name string, v json.RawMessage, out map[string]string) {
	if len(v) > 0 && v[0] == '{' && string(compact(v)) != "{}" {
		walk(t, v, func(k string, sub json.RawMessage) { flatten(t, name+"."+k, sub, out) })
		return
	}
	out[name] = refText(t, v)
}

// walk calls fn for each member of the object raw, in order.
func walk(t *testing.T, raw json.RawMessage, fn func(string, json.RawMessage)) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		fn(tok.(string), v)
	}
}

// refText is a field's text as encoding/json decodes it.
func refText(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		if x == "<NA>" {
			return ""
		}
		return x
	case json.Number:
		return string(x)
	case bool:
		if x {
			return "true"
		}
		return "false"
	case []any:
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, it := range items {
			if s := refText(t, it); s != "" {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, ",")
	default:
		return string(compact(raw))
	}
}

func compact(raw []byte) []byte {
	raw = replaceInvalidUTF8(raw)
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

func compareEvent(t *testing.T, ev Event, want ref) {
	t.Helper()
	for key, got := range map[string]string{"rule": ev.Rule, "output": ev.Output, "source": ev.Source, "hostname": ev.Hostname, "uuid": ev.UUID, "message": ev.Message} {
		if got != want.strings[key] {
			t.Fatalf("event %d: %s = %q, encoding/json: %q", ev.Index, key, got, want.strings[key])
		}
	}
	if strings.Join(ev.Tags, "\x00") != strings.Join(want.tags, "\x00") {
		t.Fatalf("event %d: tags %q, encoding/json: %q", ev.Index, ev.Tags, want.tags)
	}
	if len(ev.Fields) != len(want.fields) {
		t.Fatalf("event %d: %d fields, encoding/json: %d (%v)", ev.Index, len(ev.Fields), len(want.fields), want.fields)
	}
	for k, v := range want.fields {
		got, ok := ev.Fields[k]
		if !ok || got.String() != v {
			t.Fatalf("event %d: field %q = %q (present %v), encoding/json: %q", ev.Index, k, got.String(), ok, v)
		}
	}
}
