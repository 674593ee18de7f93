// Package falco decodes the JSON alerts that Falco's http_output and
// falcosidekick's webhook output send. It owns the rules for what a valid
// Falco event is and nothing else: no configuration, no I/O beyond the bytes
// it is handed.
package falco

import (
	"slices"
	"strings"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/text"
)

// Event is one decoded Falco alert.
type Event struct {
	// Index is the event's position in its body, from 0, and Line the
	// line of the body it starts on, from 1.
	Index, Line int
	// Raw is the event's JSON text as it came in: a part of the body,
	// not a copy, so valid only while the body is.
	Raw []byte

	Rule     string
	Priority Priority
	// Time is the event's own time as Falco reported it, in UTC. It can be in
	// the future when node clocks are skewed.
	Time     time.Time
	Output   string
	Message  string // Falco 0.39+ json_include_message_property, else empty
	Source   string
	Hostname string
	UUID     string // set by falcosidekick
	Tags     []string
	// Fields holds output_fields, plus any unknown top-level key of the
	// nested shape flattened to dotted names.
	Fields Fields
}

// Value is one output field value. It keeps the JSON Falco sent, so big
// integers and the difference between null and "<NA>" survive, and a text
// form for templates.
type Value struct {
	raw  []byte
	text string
}

// String returns the value as text: strings unquoted, numbers exactly as
// sent, lists joined with commas. It is empty when the field has no value
// (null, "" or "<NA>").
func (v Value) String() string { return v.text }

// JSON returns the value as compact JSON: numbers digit for digit and null
// as null, as Falco sent them. Only the spelling may differ: white space and
// needless escapes inside arrays and objects are dropped, and invalid UTF-8
// is replaced.
func (v Value) JSON() []byte { return v.raw }

// Fields maps Falco field names (proc.cmdline, ka.uri.param[command], ...)
// to their values.
type Fields map[string]Value

// Get returns the first of names that has a value, or "".
func (f Fields) Get(names ...string) string {
	for _, n := range names {
		if v, ok := f[n]; ok && v.text != "" {
			return v.text
		}
	}
	return ""
}

// JSON returns all fields as one compact JSON object with sorted keys and
// every value as Value.JSON returns it.
func (f Fields) JSON() string {
	if len(f) == 0 {
		return "{}"
	}
	keys := make([]string, 0, len(f))
	size := 2
	for k, v := range f {
		keys = append(keys, k)
		size += len(k) + len(v.raw) + 4
	}
	slices.Sort(keys)
	// A strings.Builder hands its bytes over as the string, without the
	// copy bytes.Buffer's String makes.
	var b strings.Builder
	b.Grow(size)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, k)
		b.WriteByte(':')
		b.Write(f[k].raw)
	}
	b.WriteByte('}')
	return b.String()
}

const hexDigits = "0123456789abcdef"

// writeJSONString writes s as a JSON string. Keys come from decoded JSON, so
// they are valid UTF-8; only quoting and control characters need escaping.
func writeJSONString(b *strings.Builder, s string) {
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b.WriteString(s[start:i])
		switch c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteString(`\u00`)
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		}
		start = i + 1
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}

// noValue reports whether a string stands for "no value" in Falco output.
func noValue(s string) bool { return s == "" || s == "<NA>" }

// trimExcerpt shortens s for an error message.
func trimExcerpt(s string) string {
	s = strings.TrimSpace(s)
	const max = 80
	if len(s) <= max {
		return s
	}
	return text.Cut(s, max) + "…"
}
