package falco

import (
	"fmt"
	"io"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// The keys of Falco's alert object. Falco writes them in lower case; other
// cases are accepted too, as encoding/json (and so falcosidekick) accepts
// them. Unlike encoding/json, where the last key of any case wins, an exact
// match wins over other cases, and the last of equals wins.
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
	ev, err := d.object()
	if err != nil && d.limit != nil && err != d.limit {
		// Past a limit the tokenizer may give up too (it nests 10,000
		// deep at most): the limit is what the sender needs to know, and
		// where reading stopped is where framing goes on from.
		d.limit.syntax, d.limit.at = err.syntax, err.at
		return Event{}, d.limit
	}
	return ev, err
}

func (d *decoder) object() (Event, *Error) {
	d.fields, d.flat, d.tags, d.made, d.limit = d.fields[:0], d.flat[:0], d.tags[:0], 0, nil
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
		case key == keyOutputFields || key == keyTags:
			raw, from, to, serr := d.entries(key)
			if serr != nil {
				return Event{}, serr
			}
			if m := &known[key]; m.take(exact) {
				m.raw, m.from, m.to = raw, from, to
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
			if err := d.flatten(2, &d.flat); err != nil {
				return Event{}, err
			}
		}
	}
	if _, err := d.dec.ReadToken(); err != nil {
		return Event{}, d.syntaxError(err)
	}
	if d.limit != nil {
		return Event{}, d.limit
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

// entries reads output_fields into d.fields or tags into d.tags: the raw
// value and where its entries are.
func (d *decoder) entries(key int) (raw []byte, from, to int, err *Error) {
	if key == keyTags {
		from = len(d.tags)
		raw, err = d.tagList()
		return raw, from, len(d.tags), err
	}
	from = len(d.fields)
	raw, err = d.outputFields()
	return raw, from, len(d.fields), err
}

// outputFields reads the value of output_fields. It returns the value's
// bytes, and adds its members to d.fields when it is an object; a limit
// passed is recorded in d.limit.
func (d *decoder) outputFields() ([]byte, *Error) {
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
			return d.flatten(3, &d.fields)
		}
		v, err := d.leaf(3)
		if err != nil {
			return err
		}
		if d.limit == nil && d.count() >= d.lim.MaxFields {
			d.limit = d.tooManyFields()
		}
		if d.limit == nil {
			d.fields = append(d.fields, pair{name: name, raw: v})
		}
		return nil
	})
}

// tagList reads the value of tags, adding its elements to d.tags when it
// is an array.
func (d *decoder) tagList() ([]byte, *Error) {
	return d.container('[', ']', func() *Error {
		v, err := d.leaf(3)
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

func limitError(field, expected, got string) *Error {
	return &Error{Field: field, Expected: expected, Got: got}
}

// leaf reads a value that is kept as it is, checking how deeply it nests:
// level is the value's own (the event object is at level 1).
func (d *decoder) leaf(level int) ([]byte, *Error) {
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
// is kept as it is. A limit passed is recorded in d.limit and reading goes
// on, so that the event's end is found.
func (d *decoder) flatten(level int, dst *[]pair) *Error {
	kind, err := d.peek()
	if err != nil {
		return err
	}
	if kind == '{' && level > d.lim.MaxDepth {
		return d.tooDeep()
	}
	if kind == '{' && d.limit == nil {
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
			d.addFlat([]byte("{}"), dst)
			return nil
		}
		prefix := len(d.name)
		for kind != '}' {
			name, rerr := d.readName()
			if rerr != nil {
				return rerr
			}
			d.name = append(append(d.name[:prefix], '.'), name...)
			if err := d.flatten(level+1, dst); err != nil {
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
	v, verr := d.leaf(level)
	if verr != nil {
		return verr
	}
	d.addFlat(v, dst)
	return nil
}

// Flattening nested objects repeats each object's name in every field
// name below it. The names made may not exceed this many bytes per
// byte of the event read so far (plus flattenSlack), so that no shape
// of nesting costs more than a small multiple of its size.
const (
	flattenFactor = 2
	flattenSlack  = 1024
)

func (d *decoder) addFlat(v []byte, dst *[]pair) {
	if d.limit != nil {
		return
	}
	if d.count() >= d.lim.MaxFields {
		d.limit = d.tooManyFields()
		return
	}
	d.made += len(d.name)
	if read := d.offset() - d.base; d.made > flattenFactor*read+flattenSlack {
		d.limit = limitError(string(d.name[:min(len(d.name), 64)]), fmt.Sprintf("nested objects whose flattened field names take at most %d bytes per byte of the event", flattenFactor), "more")
		return
	}
	*dst = append(*dst, pair{name: string(d.name), raw: v})
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
