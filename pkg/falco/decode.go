package falco

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// Error says what is wrong with one event of a request: which event, which
// field, what was expected and what was there.
type Error struct {
	Index    int    // position of the event in the body, from 0
	Line     int    // line of the body the event starts on, from 1
	Field    string // JSON key of the problem; empty for the event as a whole
	Expected string
	Got      string

	// syntax is set when the event is not valid JSON, so that its end is
	// unknown and decoding must resynchronise; at is where the tokenizer
	// stopped, from the event's start.
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
	// Flattening nested objects repeats each object's name in every field
	// name below it. The names made may not exceed this many bytes per
	// byte of the event read so far (plus flattenSlack), so that no shape
	// of nesting costs more than a small multiple of its size.
	flattenFactor = 2
	flattenSlack  = 1024
)

func (l *Limits) withDefaults() {
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxFields <= 0 {
		l.MaxFields = DefaultMaxFields
	}
	if l.MaxErrors <= 0 {
		l.MaxErrors = DefaultMaxErrors
	}
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

	// syntaxErrors counts the events that were not valid JSON, the
	// errors not kept included (for tests).
	syntaxErrors int
}

// Decode decodes a body with the default limits and returns its valid
// events in order and an error for each of the others (the unreadable rest
// of the body last, if any).
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
	// aux reads values already read by dec again (tags, lists).
	aux    jsontext.Decoder
	auxBuf bytes.Buffer
	// base is the offset in body of what dec reads.
	base int
	// reached is the furthest offset the tokenizer has read up to; a
	// value starting before it is only read within its own line, so that
	// no byte is read twice over after errors.
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

// reset points the tokenizer at body[p:end].
func (d *decoder) reset(p, end int) {
	d.base = p
	d.buf = *bytes.NewBuffer(d.body[p:end:end])
	d.dec.Reset(&d.buf, decodeOptions...)
}

// offset returns the absolute offset the tokenizer is at.
func (d *decoder) offset() int { return d.base + int(d.dec.InputOffset()) }

// lineOf moves the line counter to offset p, which never goes back, and
// returns p's line.
func (d *decoder) lineOf(p int) int {
	if p > d.lineAt {
		d.line, d.col = advance(d.body[d.lineAt:p], d.line, d.col)
		d.lineAt = p
	}
	return d.line
}

// advance returns the line and column after seg, from line and col.
func advance(seg []byte, line, col int) (int, int) {
	if n := bytes.Count(seg, []byte{'\n'}); n > 0 {
		last := bytes.LastIndexByte(seg, '\n')
		return line + n, 1 + utf8.RuneCount(seg[last+1:])
	}
	return line, col + utf8.RuneCount(seg)
}

func (d *decoder) stream(p int) {
	for p < len(d.body) && !d.stop {
		end, ok := d.value(p, true)
		if !ok {
			end = resync(d.body, p)
		}
		p = skipSpace(d.body, end)
	}
}

func (d *decoder) array(p int) {
	for first := true; !d.stop; first = false {
		p = skipSpace(d.body, p)
		if p < len(d.body) && d.body[p] == ']' && first {
			d.end(p + 1)
			return
		}
		if !first {
			if p == len(d.body) {
				d.unread(p, "',' or ']' to continue the JSON array", "the end of the body")
				return
			}
			switch d.body[p] {
			case ']':
				d.end(p + 1)
				return
			case ',':
				p = skipSpace(d.body, p+1)
			default:
				d.unread(p, fmt.Sprintf("',' or ']' after event %d of the JSON array", d.out.Count-1), excerpt(d.body[p:]))
				return
			}
		}
		if p == len(d.body) || d.body[p] == ']' {
			d.unread(p, "an event in the JSON array", excerpt(d.body[p:]))
			return
		}
		end, ok := d.value(p, false)
		if !ok {
			end, ok = skipElement(d.body, p)
			d.scanned += end - p
			if !ok {
				d.unread(p, fmt.Sprintf("a JSON array whose event %d ends where it can be told", d.out.Count-1), "an event that could not be delimited")
				return
			}
		}
		p = end
	}
}

// end checks that only white space follows the closing bracket at p-1.
func (d *decoder) end(p int) {
	if rest := skipSpace(d.body, p); rest != len(d.body) {
		d.unread(rest, "nothing after the JSON array", excerpt(d.body[rest:]))
	}
}

// unread says that nothing could be read from the next event on, which
// would have started at p.
func (d *decoder) unread(p int, expected, got string) {
	d.out.Unread = &Error{Index: d.out.Count, Line: d.lineOf(p), Expected: expected, Got: got, syntax: true}
	d.stop = true
}

// value decodes the event at p and returns where it ends; ok is false when
// it is not valid JSON, so that its end is unknown. In a stream, an event
// starting where the tokenizer has been before (after an error) is read
// within its line only.
func (d *decoder) value(p int, stream bool) (end int, ok bool) {
	if d.lim.MaxEvents > 0 && d.out.Count >= d.lim.MaxEvents {
		d.out.TooMany, d.stop = true, true
		return p, true
	}
	index, line := d.out.Count, d.lineOf(p)
	d.out.Count++
	limit := len(d.body)
	if stream && p < d.reached {
		limit = lineEnd(d.body, p)
	}
	d.reset(p, limit)
	ev, err := d.event()
	read := d.offset()
	if err != nil && err.syntax {
		read = max(read, p+err.at)
		d.out.syntaxErrors++
	}
	d.reached = max(d.reached, read)
	d.scanned += read - p
	if err != nil {
		err.Index, err.Line = index, line
		d.out.Rejected++
		if len(d.out.Errors) < d.lim.MaxErrors {
			d.describe(err)
			d.out.Errors = append(d.out.Errors, err)
		}
		return d.offset(), !err.syntax
	}
	ev.Index, ev.Line = index, line
	d.out.Events = append(d.out.Events, ev)
	return d.offset(), true
}

// syntaxError records where the tokenizer stopped; describe fills in the
// rest for the errors that are kept.
func (d *decoder) syntaxError(err error) *Error {
	at := int(d.dec.InputOffset())
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		at = int(se.ByteOffset)
	}
	return &Error{syntax: true, at: at, cause: err}
}

// describe turns a syntax error into words, with its line and column.
func (d *decoder) describe(e *Error) {
	if e.cause == nil {
		return
	}
	e.Expected = "valid JSON"
	var se *jsontext.SyntacticError
	if errors.As(e.cause, &se) {
		e.Field = trimExcerpt(string(se.JSONPointer))
	}
	line, col := d.position(d.base + e.at)
	e.Got = fmt.Sprintf("%s at line %d, column %d", syntaxReason(e.cause), line, col)
	e.cause = nil
}

// syntaxReason phrases the tokenizer's error for someone reading an answer.
func syntaxReason(err error) string {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		err = se.Err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "the end of the input"
	}
	return strings.TrimPrefix(err.Error(), "jsontext: ")
}

// position returns the line and column of offset p, at or after the
// start of the event being read, without moving the line counter.
func (d *decoder) position(p int) (line, col int) {
	p = min(p, len(d.body))
	if p < d.lineAt {
		return advance(d.body[:p], 1, 1)
	}
	return advance(d.body[d.lineAt:p], d.line, d.col)
}

func limitError(field, expected, got string) *Error {
	return &Error{Field: field, Expected: expected, Got: got}
}

// The keys of Falco's alert object. Falco writes them in lower case; like
// encoding/json (and so falcosidekick), other cases are accepted, an exact
// match winning over others and the last of equals winning.
const (
	keyOutput = iota
	keyPriority
	keyRule
	keyTime
	keyOutputFields
	keySource
	keyTags
	keyHostname
	keyUUID
	keyMessage
	numKeys
)

var keyNames = [numKeys]string{"output", "priority", "rule", "time", "output_fields", "source", "tags", "hostname", "uuid", "message"}

// knownKey returns which of Falco's keys name is, and whether exactly.
func knownKey(name string) (key int, exact bool) {
	switch name {
	case "output":
		return keyOutput, true
	case "priority":
		return keyPriority, true
	case "rule":
		return keyRule, true
	case "time":
		return keyTime, true
	case "output_fields":
		return keyOutputFields, true
	case "source":
		return keySource, true
	case "tags":
		return keyTags, true
	case "hostname":
		return keyHostname, true
	case "uuid":
		return keyUUID, true
	case "message":
		return keyMessage, true
	}
	for k, n := range keyNames {
		if strings.EqualFold(name, n) {
			return k, false
		}
	}
	return -1, false
}

// member is the value of a known key as read.
type member struct {
	raw   []byte
	set   bool
	exact bool
	// from:to in decoder.fields (output_fields) or decoder.tags (tags).
	from, to int
}

func (m *member) take(exact bool) bool {
	if m.set && m.exact && !exact {
		return false
	}
	m.set, m.exact = true, exact
	return true
}

// event reads one top-level value, which must be an object, and decodes
// it.
func (d *decoder) event() (Event, *Error) {
	var limitErr *Error
	ev, err := d.object(&limitErr)
	if err != nil && limitErr != nil {
		// Past a limit the tokenizer may give up too (it nests 10,000
		// deep at most): the limit is what the sender needs to know.
		limitErr.syntax, limitErr.at = err.syntax, err.at
		return Event{}, limitErr
	}
	return ev, err
}

func (d *decoder) object(limitErrp **Error) (Event, *Error) {
	d.fields, d.flat, d.tags, d.made = d.fields[:0], d.flat[:0], d.tags[:0], 0
	kind := d.dec.PeekKind()
	if kind != '{' {
		if _, err := d.dec.ReadValue(); err != nil {
			return Event{}, d.syntaxError(err)
		}
		return Event{}, &Error{Expected: "a JSON object", Got: "a JSON " + kindName(kind)}
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return Event{}, d.syntaxError(err)
	}
	var known [numKeys]member
	limitErr := *limitErrp
	defer func() { *limitErrp = limitErr }()
	for {
		kind, err := d.peek()
		if err != nil {
			return Event{}, err
		}
		if kind == '}' {
			break
		}
		name, rerr := d.readName()
		if rerr != nil {
			return Event{}, rerr
		}
		key, exact := knownKey(name)
		switch {
		case key == keyOutputFields:
			m := &known[key]
			from := len(d.fields)
			raw, serr := d.outputFields(&limitErr)
			if serr != nil {
				return Event{}, serr
			}
			if m.take(exact) {
				m.raw, m.from, m.to = raw, from, len(d.fields)
			}
		case key == keyTags:
			m := &known[key]
			from := len(d.tags)
			raw, serr := d.tagList(&limitErr)
			if serr != nil {
				return Event{}, serr
			}
			if m.take(exact) {
				m.raw, m.from, m.to = raw, from, len(d.tags)
			}
		case key >= 0:
			raw, err := d.dec.ReadValue()
			if err != nil {
				return Event{}, d.syntaxError(err)
			}
			if m := &known[key]; m.take(exact) {
				m.raw = raw
			}
		default:
			d.name = append(d.name[:0], name...)
			if err := d.flatten(2, &limitErr, &d.flat); err != nil {
				return Event{}, err
			}
		}
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return Event{}, d.syntaxError(err)
	}
	if limitErr != nil {
		return Event{}, limitErr
	}
	return d.decodeKnown(&known)
}

// peek returns the kind of the next token, or the syntax error there.
func (d *decoder) peek() (jsontext.Kind, *Error) {
	kind := d.dec.PeekKind()
	if kind == 0 {
		_, err := d.dec.ReadToken()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return 0, d.syntaxError(err)
	}
	return kind, nil
}

// readName reads an object member's name.
func (d *decoder) readName() (string, *Error) {
	raw, err := d.dec.ReadValue()
	if err != nil {
		return "", d.syntaxError(err)
	}
	s, _ := unquote(raw)
	return s, nil
}

// container reads a value that should be an object or array, opened by
// open, calling each for every member or element until close. It returns
// the value's bytes whatever it is; each is called only for the expected
// kind.
func (d *decoder) container(open, close jsontext.Kind, each func() *Error) ([]byte, *Error) {
	start := d.offset()
	kind, err := d.peek()
	if err != nil {
		return nil, err
	}
	if kind != open {
		v, err := d.dec.ReadValue()
		if err != nil {
			return nil, d.syntaxError(err)
		}
		return v, nil
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return nil, d.syntaxError(err)
	}
	for {
		kind, err := d.peek()
		if err != nil {
			return nil, err
		}
		if kind == close {
			break
		}
		if err := each(); err != nil {
			return nil, err
		}
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return nil, d.syntaxError(err)
	}
	return valueAt(d.body[start:d.offset()]), nil
}

// outputFields reads the value of output_fields. It returns the value's
// bytes, and adds its members to d.fields when it is an object; a limit
// passed is recorded in limit.
func (d *decoder) outputFields(limit **Error) ([]byte, *Error) {
	return d.container('{', '}', func() *Error {
		name, err := d.readName()
		if err != nil {
			return err
		}
		if kind, err := d.peek(); err != nil {
			return err
		} else if kind == '{' {
			// Nested objects flatten here too.
			d.name = append(d.name[:0], name...)
			return d.flatten(3, limit, &d.fields)
		}
		v, err := d.leaf(3, limit)
		if err != nil {
			return err
		}
		if *limit == nil && d.count() >= d.lim.MaxFields {
			*limit = d.tooManyFields()
		}
		if *limit == nil {
			d.fields = append(d.fields, pair{name: name, raw: v})
		}
		return nil
	})
}

// tagList reads the value of tags, adding its elements to d.tags when it
// is an array.
func (d *decoder) tagList(limit **Error) ([]byte, *Error) {
	return d.container('[', ']', func() *Error {
		v, err := d.leaf(3, limit)
		if err != nil {
			return err
		}
		d.tags = append(d.tags, v)
		return nil
	})
}

func (d *decoder) count() int { return len(d.fields) + len(d.flat) }

// tooDeep stops reading an event that nests deeper than the limit. Its end
// is not looked for: that would take reading all of the nesting.
func (d *decoder) tooDeep() *Error {
	e := limitError(trimExcerpt(string(d.dec.StackPointer())), fmt.Sprintf("objects and arrays nested at most %d deep", d.lim.MaxDepth), "deeper nesting")
	e.syntax, e.at = true, int(d.dec.InputOffset())
	return e
}

func (d *decoder) tooManyFields() *Error {
	return limitError(keyNames[keyOutputFields], fmt.Sprintf("at most %d fields", d.lim.MaxFields), "more")
}

// leaf reads a value that is kept as it is, checking how deeply it nests:
// level is the value's own (the event object is at level 1).
func (d *decoder) leaf(level int, limit **Error) ([]byte, *Error) {
	kind, err := d.peek()
	if err != nil {
		return nil, err
	}
	if kind != '{' && kind != '[' {
		v, err := d.dec.ReadValue()
		if err != nil {
			return nil, d.syntaxError(err)
		}
		return v, nil
	}
	start := d.offset()
	base := d.dec.StackDepth()
	for first := true; first || d.dec.StackDepth() > base; first = false {
		if _, err := d.dec.ReadToken(); err != nil {
			return nil, d.syntaxError(err)
		}
		if level-1+d.dec.StackDepth()-base > d.lim.MaxDepth {
			return nil, d.tooDeep()
		}
	}
	return valueAt(d.body[start:d.offset()]), nil
}

// flatten reads the value of the member named d.name, at level (the event
// object is at 1), into dst: objects become dotted names, anything else
// is kept as it is. A limit passed is recorded in limit and reading goes
// on, so that the event's end is found.
func (d *decoder) flatten(level int, limit **Error, dst *[]pair) *Error {
	kind, err := d.peek()
	if err != nil {
		return err
	}
	if kind == '{' && level > d.lim.MaxDepth {
		return d.tooDeep()
	}
	if kind == '{' && *limit == nil {
		if _, err := d.dec.ReadToken(); err != nil {
			return d.syntaxError(err)
		}
		kind, err := d.peek()
		if err != nil {
			return err
		}
		if kind == '}' {
			// An empty object is a value of its own.
			_, _ = d.dec.ReadToken()
			d.addFlat([]byte("{}"), limit, dst)
			return nil
		}
		prefix := len(d.name)
		for kind != '}' {
			name, rerr := d.readName()
			if rerr != nil {
				return rerr
			}
			d.name = append(append(d.name[:prefix], '.'), name...)
			if err := d.flatten(level+1, limit, dst); err != nil {
				return err
			}
			if kind, err = d.peek(); err != nil {
				return err
			}
		}
		d.name = d.name[:prefix]
		_, _ = d.dec.ReadToken()
		return nil
	}
	v, verr := d.leaf(level, limit)
	if verr != nil {
		return verr
	}
	d.addFlat(v, limit, dst)
	return nil
}

func (d *decoder) addFlat(v []byte, limit **Error, dst *[]pair) {
	if *limit != nil {
		return
	}
	if d.count() >= d.lim.MaxFields {
		*limit = d.tooManyFields()
		return
	}
	d.made += len(d.name)
	if read := d.offset() - d.base; d.made > flattenFactor*read+flattenSlack {
		*limit = limitError(string(d.name[:min(len(d.name), 64)]), fmt.Sprintf("nested objects whose flattened field names take at most %d bytes per byte of the event", flattenFactor), "more")
		return
	}
	*dst = append(*dst, pair{name: string(d.name), raw: v})
}

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

func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "string"
	case '0':
		return "number"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	case '[':
		return "array"
	case '{':
		return "object"
	}
	return "value"
}

// resync returns the offset of the next line starting with '{' after p,
// or the end of the body.
func resync(d []byte, p int) int {
	if i := bytes.Index(d[p:], []byte("\n{")); i >= 0 {
		return p + i + 1
	}
	return len(d)
}

// lineEnd returns the offset of the end of the line p is on.
func lineEnd(d []byte, p int) int {
	if i := bytes.IndexByte(d[p:], '\n'); i >= 0 {
		return p + i
	}
	return len(d)
}

// skipElement finds the end of the broken array element at p by its
// brackets and strings alone, and reports whether what follows it can
// continue the array. It is only used after the tokenizer found an error,
// to go on with the next element.
func skipElement(d []byte, p int) (int, bool) {
	depth := 0
	for i := p; i < len(d); i++ {
		switch d[i] {
		case '"':
			for i++; i < len(d) && d[i] != '"'; i++ {
				if d[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth < 0 {
				return 0, false
			}
			if depth == 0 {
				next := skipSpace(d, i+1)
				return i + 1, next < len(d) && (d[next] == ',' || d[next] == ']')
			}
		case ',':
			if depth == 0 {
				return i, true
			}
		}
	}
	return 0, false
}

func skipBOM(d []byte) int {
	if bytes.HasPrefix(d, []byte("\xef\xbb\xbf")) {
		return 3
	}
	return 0
}

func skipSpace(d []byte, p int) int {
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

// valueAt returns b from the start of the value that follows an object
// member's name, which the tokenizer's offset points just past.
func valueAt(b []byte) []byte {
	p := skipSpace(b, 0)
	if p < len(b) && b[p] == ':' {
		p = skipSpace(b, p+1)
	}
	return b[p:]
}

func excerpt(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	return strconv.Quote(trimExcerpt(string(b[:min(len(b), 256)])))
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

// unquote returns the string a JSON string literal holds. The tokenizer
// validated it; a literal without escapes is its content between the
// quotes. Escapes and invalid UTF-8 (replaced with U+FFFD byte by byte, as
// encoding/json does and Alertmanager needs) take encoding/json.
func unquote(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if utf8.Valid(inner) {
		if bytes.IndexByte(inner, '\\') < 0 {
			return intern(inner), true
		}
		if b, err := jsontext.AppendUnquote(make([]byte, 0, len(inner)), raw); err == nil && utf8.Valid(b) {
			return string(b), true
		}
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
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

// items calls fn with each element of the JSON array raw, which the
// tokenizer read before. fn may call items again.
func (d *decoder) items(raw []byte, fn func([]byte) *Error) *Error {
	d.auxBuf = *bytes.NewBuffer(raw)
	d.aux.Reset(&d.auxBuf, decodeOptions...)
	if _, err := d.aux.ReadToken(); err != nil {
		return &Error{Expected: "a JSON array", Got: err.Error()}
	}
	var elems [][]byte
	for d.aux.PeekKind() != ']' {
		v, err := d.aux.ReadValue()
		if err != nil {
			return &Error{Expected: "a JSON array", Got: err.Error()}
		}
		elems = append(elems, v)
	}
	for _, v := range elems {
		if err := fn(v); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) newValue(raw []byte) Value {
	if !utf8.Valid(raw) {
		// Invalid bytes can only be inside strings: replace them as
		// encoding/json does, so the value's JSON is valid UTF-8 too.
		raw = replaceInvalidUTF8(raw)
	}
	if len(raw) > 0 && (raw[0] == '[' || raw[0] == '{') {
		if c, err := jsontext.AppendFormat(nil, raw, decodeOptions...); err == nil {
			raw = c
		}
	}
	return Value{raw: raw, text: d.valueText(raw)}
}

// replaceInvalidUTF8 replaces each byte of b that is not part of valid
// UTF-8 with U+FFFD, byte by byte like encoding/json.
func replaceInvalidUTF8(b []byte) []byte {
	out := make([]byte, 0, len(b)+8)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	return out
}

func (d *decoder) valueText(raw []byte) string {
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
		var parts []string
		if d.items(raw, func(it []byte) *Error {
			if t := d.valueText(it); t != "" {
				parts = append(parts, t)
			}
			return nil
		}) != nil {
			return string(raw)
		}
		return strings.Join(parts, ",")
	default:
		return string(raw)
	}
}
