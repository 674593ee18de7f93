package falco

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// decodeKnown checks Falco's keys and builds the event.
func (d *decoder) decodeKnown(known *[numKeys]member) (Event, *Error) {
	raw := func(k int) []byte { return known[k].raw }
	var ev Event
	var err *Error
	if ev.Rule, err = requiredString(raw(keyRule), keyNames[keyRule]); err != nil {
		return Event{}, err
	}
	if ev.Priority, err = decodePriority(raw(keyPriority)); err != nil {
		return Event{}, err
	}
	if ev.Time, err = decodeTime(raw(keyTime)); err != nil {
		return Event{}, err
	}
	for _, f := range []struct {
		key int
		dst *string
	}{
		{keyOutput, &ev.Output},
		{keySource, &ev.Source},
		{keyHostname, &ev.Hostname},
		{keyUUID, &ev.UUID},
		{keyMessage, &ev.Message},
	} {
		if *f.dst, err = optionalString(raw(f.key), keyNames[f.key]); err != nil {
			return Event{}, err
		}
	}
	if ev.Tags, err = decodeTags(raw(keyTags), d.tags[known[keyTags].from:known[keyTags].to]); err != nil {
		return Event{}, err
	}
	of := &known[keyOutputFields]
	if !isNull(of.raw) && of.raw[0] != '{' {
		return Event{}, &Error{Field: keyNames[keyOutputFields], Expected: "a JSON object of field names to values", Got: describe(of.raw)}
	}
	chosen := d.fields[of.from:of.to]
	ev.Fields = make(Fields, len(chosen)+len(d.flat))
	// Nested objects first, so that output_fields wins on a clash.
	for _, f := range d.flat {
		ev.Fields[f.name] = d.newValue(f.raw)
	}
	for _, f := range chosen {
		ev.Fields[f.name] = d.newValue(f.raw)
	}
	return ev, nil
}

func isNull(raw []byte) bool { return len(raw) == 0 || string(raw) == "null" }

func describe(raw []byte) string {
	if len(raw) == 0 {
		return "nothing (the key is missing)"
	}
	switch raw[0] {
	case '"':
		return trimExcerpt(string(raw[:min(len(raw), 256)]))
	case '{':
		return "a JSON object"
	case '[':
		return "a JSON array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "the number " + trimExcerpt(string(raw[:min(len(raw), 256)]))
	}
}

func requiredString(raw []byte, key string) (string, *Error) {
	s, ok := unquote(raw)
	if !ok || strings.TrimSpace(s) == "" {
		return "", &Error{Field: key, Expected: "a non-empty string", Got: describe(raw)}
	}
	return s, nil
}

func optionalString(raw []byte, key string) (string, *Error) {
	if isNull(raw) {
		return "", nil
	}
	s, ok := unquote(raw)
	if !ok {
		return "", &Error{Field: key, Expected: "a string", Got: describe(raw)}
	}
	return s, nil
}

func decodePriority(raw []byte) (Priority, *Error) {
	const expected = "a Falco priority: Emergency, Alert, Critical, Error, Warning, Notice, Informational (or Info) or Debug, in any case"
	s, ok := unquote(raw)
	if !ok {
		return 0, &Error{Field: keyNames[keyPriority], Expected: expected, Got: describe(raw)}
	}
	p, err := ParsePriority(strings.TrimSpace(s))
	if err != nil {
		return 0, &Error{Field: keyNames[keyPriority], Expected: expected, Got: describe(raw)}
	}
	return p, nil
}

// minUnixNano is where integer times stop looking like seconds or
// milliseconds: 1e15 ns is January 1970.
const minUnixNano = 1_000_000_000_000_000

// Event times must be writable as RFC 3339, which Alertmanager and the
// durable queue need: years 0 to 9999.
var (
	minTime = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

func decodeTime(raw []byte) (time.Time, *Error) {
	const expected = "an RFC3339 timestamp like \"2023-05-25T13:44:05.478445995Z\" or integer nanoseconds since the Unix epoch"
	field := keyNames[keyTime]
	if isNull(raw) {
		return time.Time{}, &Error{Field: field, Expected: expected, Got: describe(raw)}
	}
	var t time.Time
	var ok bool
	switch raw[0] {
	case '"':
		if s, sok := unquote(raw); sok {
			if pt, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s)); err == nil {
				t, ok = pt.UTC(), true
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
				if nsec < 0 || nsec >= 1e9 || sec < minTime.Unix() || sec > maxTime.Unix() {
					return time.Time{}, &Error{Field: field, Expected: "seconds within years 0 to 9999 and nanos from 0 to 999999999", Got: trimExcerpt(string(raw[:min(len(raw), 256)]))}
				}
				t, ok = time.Unix(sec, nsec).UTC(), true
			}
		}
	default:
		if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			if n < minUnixNano {
				return time.Time{}, &Error{Field: field, Expected: expected, Got: "the number " + string(raw) + ", too small for nanoseconds (seconds or milliseconds?)"}
			}
			t, ok = time.Unix(0, n).UTC(), true
		}
	}
	if !ok {
		return time.Time{}, &Error{Field: field, Expected: expected, Got: describe(raw)}
	}
	if t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, &Error{Field: field, Expected: "a time within years 0 to 9999", Got: describe(raw)}
	}
	return t, nil
}

func decodeTags(raw []byte, items [][]byte) ([]string, *Error) {
	if isNull(raw) {
		return nil, nil
	}
	if raw[0] != '[' {
		return nil, &Error{Field: keyNames[keyTags], Expected: "an array of strings", Got: describe(raw)}
	}
	tags := make([]string, 0, len(items))
	for i, it := range items {
		s, ok := unquote(it)
		if !ok {
			return nil, &Error{Field: fmt.Sprintf("%s[%d]", keyNames[keyTags], i), Expected: "a string", Got: describe(it)}
		}
		if s != "" {
			tags = append(tags, s)
		}
	}
	return tags, nil
}
