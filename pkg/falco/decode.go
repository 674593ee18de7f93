package falco

import (
	"bytes"
	"fmt"
	"strings"
	"sync"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/defaults"
)

// Error says what is wrong with one event of a request: which event, which
// field, what was expected and what was there.
type Error struct {
	Index    int    // position of the event in the body, from 0
	Line     int    // line of the body the event starts on, from 1
	Field    string // JSON key of the problem; empty for the event as a whole
	Expected string
	Got      string

	// syntax is set when the event's end is unknown, because it is not
	// valid JSON or nests deeper than Limits.MaxDepth, so that decoding
	// must resynchronise; at is where the tokenizer stopped, from the
	// event's start.
	syntax bool
	at     int
	cause  error
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

// Limits bound what one body may cost to decode. Zero values take the
// defaults, but for MaxEvents: zero is no limit.
type Limits struct {
	// MaxEvents stops decoding past this many events (Body.TooMany).
	MaxEvents int
	// MaxDepth is how deeply objects and arrays may nest in an event.
	MaxDepth int
	// MaxFields is how many output fields one event may have, the
	// flattened nested ones included.
	MaxFields int
	// MaxErrors is how many errors are kept; the rest are only counted.
	MaxErrors int
}

// Defaults for Limits. Real Falco alerts nest three levels at most (the
// nested shape's container.labels) and carry up to a hundred fields.
const (
	DefaultMaxDepth  = 32
	DefaultMaxFields = 1024
	DefaultMaxErrors = 1000
)

func (l *Limits) withDefaults() {
	defaults.Set(&l.MaxDepth, DefaultMaxDepth)
	defaults.Set(&l.MaxFields, DefaultMaxFields)
	defaults.Set(&l.MaxErrors, DefaultMaxErrors)
}

// Body is a decoded request body. Every event of the body is in Events or
// counted in Rejected, up to Unread when that is set.
type Body struct {
	Events []Event // the valid events, in order
	// Errors holds an error for each invalid event, in order, up to
	// Limits.MaxErrors; Rejected counts them all.
	Errors   []*Error
	Rejected int
	// Count is the number of events read, valid or not.
	Count int
	// Unread, when set, says that nothing could be read from event
	// Unread.Index on, and why.
	Unread *Error
	// TooMany is set when the body holds more than Limits.MaxEvents
	// events; decoding stopped there.
	TooMany bool

	// syntaxErrors counts the events whose end was unknown (Error.syntax),
	// the errors not kept included (for tests).
	syntaxErrors int
}

// Decode decodes a body with the default limits and returns its valid
// events in order and an error for each of the others, up to
// DefaultMaxErrors of them (the unreadable rest of the body last, if any).
func Decode(body []byte) ([]Event, []*Error) {
	b := DecodeBody(body, Limits{})
	errs := b.Errors
	if b.Unread != nil {
		errs = append(errs, b.Unread)
	}
	return b.Events, errs
}

// LooksLikeJSON reports whether body starts like a JSON object or array,
// which is how a Falco text-output line (json_output: false) is told apart.
func LooksLikeJSON(body []byte) bool {
	p := skipSpace(body, skipBOM(body))
	return p < len(body) && (body[p] == '{' || body[p] == '[')
}

// DecodeBody decodes a request body: one JSON object (what Falco and
// falcosidekick send), a JSON array of objects, or objects one after the
// other (newline-delimited JSON). Which of these it is follows from the
// first value; the grammar decides where each event ends. After a syntax
// error, decoding goes on at the next line that starts with '{' in a stream
// of objects, and at the next element in an array when the broken element
// can still be delimited; otherwise Unread says from where nothing could be
// read.
func DecodeBody(body []byte, lim Limits) *Body {
	d := decoders.Get().(*decoder)
	defer d.release()
	return decodeBodyWith(d, body, lim)
}

// decoders keep their scratch space from body to body.
var decoders = sync.Pool{New: func() any { return new(decoder) }}

func (d *decoder) release() {
	clear(d.fields[:cap(d.fields)])
	clear(d.flat[:cap(d.flat)])
	clear(d.tags[:cap(d.tags)])
	*d = decoder{name: d.name[:0], fields: d.fields[:0], flat: d.flat[:0], tags: d.tags[:0]}
	decoders.Put(d)
}

func decodeBodyWith(d *decoder, body []byte, lim Limits) *Body {
	lim.withDefaults()
	d.body, d.lim, d.line, d.col = body, lim, 1, 1
	p := skipSpace(body, skipBOM(body))
	if p < len(body) {
		if body[p] == '[' {
			d.array(p + 1)
		} else {
			d.stream(p)
		}
	}
	out := d.out
	return &out
}

type decoder struct {
	body []byte
	lim  Limits
	out  Body
	stop bool

	dec jsontext.Decoder
	buf bytes.Buffer
	// aux reads again the arrays dec already read, for their text
	// (valueText).
	aux    jsontext.Decoder
	auxBuf bytes.Buffer
	// base is the offset in body of what dec reads.
	base int
	// reached is the furthest offset the tokenizer has read up to; in a
	// stream, a value starting before it is only read within its own line,
	// so that no byte is read twice over after errors.
	reached int

	// line and col are the line and column of offset lineAt, which only
	// grows.
	line, col, lineAt int

	// Scratch space, reused from event to event.
	name   []byte
	fields []pair
	flat   []pair
	tags   [][]byte
	made   int // bytes of flattened names in flat
	// limit is the first limit (fields, flattened names) the event being
	// read passed. The walk records it and reads on to the event's end, so
	// that the next event can be found; then the event is refused with it.
	limit *Error

	// scanned counts the bytes the tokenizer read, for tests of the cost.
	scanned int
}

// pair is one output field as read.
type pair struct {
	name string
	raw  []byte
}

var decodeOptions = []jsontext.Options{
	// Like encoding/json: the last of duplicate names wins, and invalid
	// UTF-8 is replaced, not refused.
	jsontext.AllowDuplicateNames(true),
	jsontext.AllowInvalidUTF8(true),
}
