package falco

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

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
		var end int
		var ok bool
		if len(d.out.Errors) >= d.lim.MaxErrors && !valueStart(d.body[p]) {
			// Errors are only counted now, and no JSON value starts
			// with this byte: the tokenizer would fail on it at once,
			// at a cost many times the byte's (a body of commas). Count
			// it, and skip the element as after any syntax error.
			if d.lim.MaxEvents > 0 && d.out.Count >= d.lim.MaxEvents {
				d.out.TooMany, d.stop = true, true
				return
			}
			d.out.Count++
			d.out.Rejected++
			d.out.syntaxErrors++
		} else {
			end, ok = d.value(p, false)
		}
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
			d.describeSyntax(err)
			d.out.Errors = append(d.out.Errors, err)
		}
		return d.offset(), !err.syntax
	}
	ev.Index, ev.Line, ev.Raw = index, line, d.body[p:d.offset():d.offset()]
	d.out.Events = append(d.out.Events, ev)
	return d.offset(), true
}

// syntaxError records where the tokenizer stopped; describeSyntax fills
// in the rest for the errors that are kept.
func (d *decoder) syntaxError(err error) *Error {
	at := int(d.dec.InputOffset())
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		at = int(se.ByteOffset)
	}
	return &Error{syntax: true, at: at, cause: err}
}

// describeSyntax turns a syntax error into words, with its line and column.
func (d *decoder) describeSyntax(e *Error) {
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

// valueStart says whether a JSON value can start with c.
func valueStart(c byte) bool {
	switch c {
	case '{', '[', '"', '-', 't', 'f', 'n':
		return true
	}
	return '0' <= c && c <= '9'
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

func excerpt(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	return strconv.Quote(trimExcerpt(string(b[:min(len(b), 256)])))
}
