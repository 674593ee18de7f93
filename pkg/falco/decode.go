package falco

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Error says what is wrong with one event of a request: which event, which
// field, what was expected and what was there.
type Error struct {
	Index    int    // position of the event in the body, from 0
	Line     int    // line of the body the event starts on, from 1
	Field    string // JSON key of the problem; empty for the event as a whole
	Expected string
	Got      string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "event %d (line %d): ", e.Index, e.Line)
	if e.Field != "" {
		fmt.Fprintf(&b, "field %q: ", e.Field)
	}
	b.WriteString("expected ")
	b.WriteString(e.Expected)
	if e.Got != "" {
		b.WriteString(", got ")
		b.WriteString(e.Got)
	}
	return b.String()
}

// RawEvent is one event's bytes as split from a body, or the reason they
// could not be split out.
type RawEvent struct {
	Index int
	Line  int
	Data  []byte
	Err   *Error // set when Data is not a complete JSON value
}

// Decode splits body into events and decodes each of them. Valid events come
// back in input order; an invalid one never costs the valid ones beside it.
func Decode(body []byte) ([]Event, []*Error) {
	return DecodeAll(Split(body))
}

// DecodeAll decodes split events: the valid ones in order, and an error for
// each of the others.
func DecodeAll(raws []RawEvent) ([]Event, []*Error) {
	events := make([]Event, 0, len(raws))
	var errs []*Error
	for _, r := range raws {
		ev, err := r.Decode()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		events = append(events, ev)
	}
	return events, errs
}

// Decode decodes one split event.
func (r RawEvent) Decode() (Event, *Error) {
	if r.Err != nil {
		return Event{}, r.Err
	}
	ev, err := DecodeEvent(r.Data)
	if err != nil {
		err.Index, err.Line = r.Index, r.Line
		return Event{}, err
	}
	return ev, nil
}

// LooksLikeJSON reports whether body starts like a JSON object or array,
// which is how a Falco text-output line (json_output: false) is told apart.
func LooksLikeJSON(body []byte) bool {
	p := skipSpace(body, 0)
	return p < len(body) && (body[p] == '{' || body[p] == '[')
}

// Split cuts a request body into events. It accepts one JSON object (what
// Falco and falcosidekick send), a JSON array of objects, and objects one
// after the other (newline-delimited JSON). A broken event is reported and
// splitting resumes at the next line that starts with '{'.
func Split(body []byte) []RawEvent {
	s := splitter{data: body, line: 1}
	p := s.skip(0)
	if p == len(body) {
		return nil
	}
	if body[p] == '[' {
		s.array(p + 1)
	} else {
		s.stream(p)
	}
	return s.out
}

type splitter struct {
	data []byte
	out  []RawEvent
	// line is the line number at offset lineAt.
	line, lineAt int
}

// lineOf returns the line number of offset p; offsets only grow.
func (s *splitter) lineOf(p int) int {
	s.line += bytes.Count(s.data[s.lineAt:p], []byte{'\n'})
	s.lineAt = p
	return s.line
}

func (s *splitter) skip(p int) int { return skipSpace(s.data, p) }

func (s *splitter) emit(start, end int, err *Error) {
	r := RawEvent{Index: len(s.out), Line: s.lineOf(start), Err: err}
	if err == nil {
		r.Data = s.data[start:end]
	} else {
		err.Index, err.Line = r.Index, r.Line
	}
	s.out = append(s.out, r)
}

func (s *splitter) stream(p int) {
	for p < len(s.data) {
		if s.data[p] != '{' {
			next := s.resync(p)
			s.emit(p, next, &Error{Expected: "a JSON object", Got: excerpt(s.data[p:next])})
			p = s.skip(next)
			continue
		}
		end, err := s.value(p)
		if err != nil {
			s.emit(p, end, err)
			p = s.skip(end)
			continue
		}
		s.emit(p, end, nil)
		p = s.skip(end)
	}
}

func (s *splitter) array(p int) {
	for {
		p = s.skip(p)
		if p == len(s.data) {
			s.emit(p, p, &Error{Expected: "',' or ']' to continue the JSON array", Got: "the end of the body"})
			return
		}
		if s.data[p] == ']' {
			if rest := s.skip(p + 1); rest != len(s.data) {
				s.emit(rest, len(s.data), &Error{Expected: "nothing after the JSON array", Got: excerpt(s.data[rest:])})
			}
			return
		}
		end, err := s.value(p)
		s.emit(p, end, err)
		p = s.skip(end)
		if err != nil {
			continue
		}
		if p < len(s.data) && s.data[p] == ',' {
			p++
		}
	}
}

// value finds the end of the JSON value at p. It only tracks strings and
// nesting; the value's grammar is checked when it is decoded. A newline
// followed by '{' inside an unfinished object ends it as broken, so one
// truncated line of newline-delimited JSON costs only itself.
func (s *splitter) value(p int) (int, *Error) {
	d := s.data
	switch d[p] {
	case '{', '[':
	case '"':
		end, ok := scanString(d, p)
		if !ok {
			return len(d), &Error{Expected: "a complete JSON value", Got: "an unterminated string"}
		}
		return end, nil
	default:
		end := p
		for end < len(d) && !isDelim(d[end]) {
			end++
		}
		if end == p {
			return p + 1, &Error{Expected: "a JSON value", Got: excerpt(d[p : p+1])}
		}
		return end, nil
	}
	depth := 0
	for i := p; i < len(d); i++ {
		switch d[i] {
		case '"':
			end, ok := scanString(d, i)
			if !ok {
				return s.broken(i, "an unterminated string")
			}
			i = end - 1
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, nil
			}
		case '\n':
			if i+1 < len(d) && d[i+1] == '{' {
				return i + 1, &Error{Expected: "a complete JSON object", Got: "a new object on the next line before this one was closed"}
			}
		}
	}
	return len(d), &Error{Expected: "a complete JSON value", Got: "the end of the body"}
}

// broken reports an unfinished value at i and finds where to resume.
func (s *splitter) broken(i int, got string) (int, *Error) {
	return s.resync(i), &Error{Expected: "a complete JSON value", Got: got}
}

// resync returns the offset of the next line starting with '{' after p, or
// the end of the body.
func (s *splitter) resync(p int) int {
	if i := bytes.Index(s.data[p:], []byte("\n{")); i >= 0 {
		return p + i + 1
	}
	return len(s.data)
}

// scanString returns the offset just past the JSON string starting at p.
// Strings cannot hold raw newlines, so one ends the search.
func scanString(d []byte, p int) (int, bool) {
	for i := p + 1; i < len(d); i++ {
		switch d[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		case '\n':
			return i, false
		}
	}
	return len(d), false
}

func isDelim(c byte) bool {
	switch c {
	case ',', ']', '}', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

func skipSpace(d []byte, p int) int {
	if p == 0 && bytes.HasPrefix(d, []byte("\xef\xbb\xbf")) {
		p = 3
	}
	for p < len(d) {
		switch d[p] {
		case ' ', '\t', '\r', '\n':
			p++
		default:
			return p
		}
	}
	return p
}

func excerpt(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	return strconv.Quote(trimExcerpt(string(b)))
}

// The keys of Falco's alert object. Falco writes them in lower case; like
// encoding/json (and so falcosidekick), other cases are accepted.
const (
	keyOutput       = "output"
	keyPriority     = "priority"
	keyRule         = "rule"
	keyTime         = "time"
	keyOutputFields = "output_fields"
	keySource       = "source"
	keyTags         = "tags"
	keyHostname     = "hostname"
	keyUUID         = "uuid"
	keyMessage      = "message"
)

func isKnownKey(k string) bool {
	switch k {
	case keyOutput, keyPriority, keyRule, keyTime, keyOutputFields, keySource, keyTags, keyHostname, keyUUID, keyMessage:
		return true
	}
	return false
}

// DecodeEvent decodes one Falco alert object. The returned error's Index and
// Line are zero; Decode and RawEvent.Decode fill them in.
func DecodeEvent(data []byte) (Event, *Error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return Event{}, &Error{Expected: "a JSON object", Got: "a JSON " + ute.Value}
		}
		return Event{}, &Error{Expected: "valid JSON", Got: strconv.Quote(err.Error())}
	}
	known := make(map[string]json.RawMessage, 10)
	var extra []string
	for k, v := range top {
		if isKnownKey(k) {
			known[k] = v
			continue
		}
		if lk := strings.ToLower(k); isKnownKey(lk) {
			if _, exact := top[lk]; !exact {
				known[lk] = v
			}
			continue
		}
		extra = append(extra, k)
	}

	var ev Event
	var err *Error
	if ev.Rule, err = requiredString(known, keyRule); err != nil {
		return Event{}, err
	}
	if ev.Priority, err = decodePriority(known[keyPriority]); err != nil {
		return Event{}, err
	}
	if ev.Time, err = decodeTime(known[keyTime]); err != nil {
		return Event{}, err
	}
	for _, f := range []struct {
		key string
		dst *string
	}{
		{keyOutput, &ev.Output},
		{keySource, &ev.Source},
		{keyHostname, &ev.Hostname},
		{keyUUID, &ev.UUID},
		{keyMessage, &ev.Message},
	} {
		if *f.dst, err = optionalString(known, f.key); err != nil {
			return Event{}, err
		}
	}
	if ev.Tags, err = decodeTags(known[keyTags]); err != nil {
		return Event{}, err
	}
	if ev.Fields, err = decodeFields(known[keyOutputFields], len(extra)); err != nil {
		return Event{}, err
	}
	// Unknown top-level keys are the nested shape (container: {name: ...}):
	// flatten them to dotted field names. output_fields wins on a clash.
	for _, k := range extra {
		flattenInto(ev.Fields, k, top[k], false)
	}
	return ev, nil
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

func describe(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing (the key is missing)"
	}
	switch raw[0] {
	case '"':
		return trimExcerpt(string(raw))
	case '{':
		return "a JSON object"
	case '[':
		return "a JSON array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "the number " + trimExcerpt(string(raw))
	}
}

// unquote returns the string a JSON string literal holds. The bytes were
// validated by json.Unmarshal already, so a literal without escapes is its
// content between the quotes; escapes, and invalid UTF-8 (which the decoder
// replaces with U+FFFD, as Alertmanager needs), take the full decoder.
func unquote(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if inner := raw[1 : len(raw)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func requiredString(known map[string]json.RawMessage, key string) (string, *Error) {
	raw := known[key]
	s, ok := unquote(raw)
	if !ok || strings.TrimSpace(s) == "" {
		return "", &Error{Field: key, Expected: "a non-empty string", Got: describe(raw)}
	}
	return s, nil
}

func optionalString(known map[string]json.RawMessage, key string) (string, *Error) {
	raw := known[key]
	if isNull(raw) {
		return "", nil
	}
	s, ok := unquote(raw)
	if !ok {
		return "", &Error{Field: key, Expected: "a string", Got: describe(raw)}
	}
	return s, nil
}

func decodePriority(raw json.RawMessage) (Priority, *Error) {
	const expected = "a Falco priority: Emergency, Alert, Critical, Error, Warning, Notice, Informational (or Info) or Debug, in any case"
	s, ok := unquote(raw)
	if !ok {
		return 0, &Error{Field: keyPriority, Expected: expected, Got: describe(raw)}
	}
	p, err := ParsePriority(strings.TrimSpace(s))
	if err != nil {
		return 0, &Error{Field: keyPriority, Expected: expected, Got: describe(raw)}
	}
	return p, nil
}

// minUnixNano is where integer times stop looking like seconds or
// milliseconds: 1e15 ns is January 1970.
const minUnixNano = 1_000_000_000_000_000

func decodeTime(raw json.RawMessage) (time.Time, *Error) {
	const expected = "an RFC3339 timestamp like \"2023-05-25T13:44:05.478445995Z\" or integer nanoseconds since the Unix epoch"
	if isNull(raw) {
		return time.Time{}, &Error{Field: keyTime, Expected: expected, Got: describe(raw)}
	}
	switch raw[0] {
	case '"':
		if s, ok := unquote(raw); ok {
			if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s)); err == nil {
				return t.UTC(), nil
			}
		}
	case '{':
		// The gRPC output's timestamp rendered as JSON: {"seconds": .., "nanos": ..}.
		var ts struct {
			Seconds json.Number `json:"seconds"`
			Nanos   json.Number `json:"nanos"`
		}
		if json.Unmarshal(raw, &ts) == nil {
			sec, err1 := ts.Seconds.Int64()
			nsec, err2 := ts.Nanos.Int64()
			if ts.Nanos == "" {
				nsec, err2 = 0, nil
			}
			if err1 == nil && err2 == nil {
				return time.Unix(sec, nsec).UTC(), nil
			}
		}
	default:
		if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			if n < minUnixNano {
				return time.Time{}, &Error{Field: keyTime, Expected: expected, Got: "the number " + string(raw) + ", too small for nanoseconds (seconds or milliseconds?)"}
			}
			return time.Unix(0, n).UTC(), nil
		}
	}
	return time.Time{}, &Error{Field: keyTime, Expected: expected, Got: describe(raw)}
}

func decodeTags(raw json.RawMessage) ([]string, *Error) {
	if isNull(raw) {
		return nil, nil
	}
	var items []json.RawMessage
	if raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
		return nil, &Error{Field: keyTags, Expected: "an array of strings", Got: describe(raw)}
	}
	tags := make([]string, 0, len(items))
	for i, it := range items {
		s, ok := unquote(it)
		if !ok {
			return nil, &Error{Field: fmt.Sprintf("%s[%d]", keyTags, i), Expected: "a string", Got: describe(it)}
		}
		if s != "" {
			tags = append(tags, s)
		}
	}
	return tags, nil
}

func decodeFields(raw json.RawMessage, extra int) (Fields, *Error) {
	if isNull(raw) {
		return make(Fields, extra), nil
	}
	var m map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
		return nil, &Error{Field: keyOutputFields, Expected: "a JSON object of field names to values", Got: describe(raw)}
	}
	f := make(Fields, len(m)+extra)
	for k, v := range m {
		flattenInto(f, k, v, true)
	}
	return f, nil
}

// flattenInto stores v under name, turning nested objects into dotted names.
// When overwrite is false an existing name is kept.
func flattenInto(f Fields, name string, v json.RawMessage, overwrite bool) {
	if len(v) > 0 && v[0] == '{' {
		var m map[string]json.RawMessage
		if json.Unmarshal(v, &m) == nil && len(m) > 0 {
			for k, sub := range m {
				flattenInto(f, name+"."+k, sub, overwrite)
			}
			return
		}
	}
	if _, exists := f[name]; exists && !overwrite {
		return
	}
	f[name] = newValue(v)
}

func newValue(raw json.RawMessage) Value {
	if !utf8.Valid(raw) {
		// Invalid bytes can only be inside strings: replace them as
		// the decoder does, so the value's JSON is valid UTF-8 too.
		raw = bytes.ToValidUTF8(raw, []byte("\uFFFD"))
	}
	compact := raw
	if len(raw) > 0 && (raw[0] == '[' || raw[0] == '{') {
		var b bytes.Buffer
		if json.Compact(&b, raw) == nil {
			compact = b.Bytes()
		}
	}
	return Value{raw: compact, text: valueText(compact)}
}

func valueText(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case 'n':
		return ""
	case '"':
		s, ok := unquote(raw)
		if !ok || noValue(s) {
			return ""
		}
		return s
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return string(raw)
		}
		parts := make([]string, 0, len(items))
		for _, it := range items {
			if t := valueText(it); t != "" {
				parts = append(parts, t)
			}
		}
		return strings.Join(parts, ",")
	case '{':
		return string(raw)
	default:
		if !utf8.Valid(raw) {
			return ""
		}
		return string(raw)
	}
}
