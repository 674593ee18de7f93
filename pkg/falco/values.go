package falco

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// unquote returns the string a JSON string literal holds. The tokenizer
// validated it; a literal without escapes is its content between the
// quotes, and escapes take jsontext. Invalid UTF-8, and escapes jsontext
// refuses (lone surrogates), take encoding/json, which turns them into
// U+FFFD (bad bytes one by one), as Alertmanager needs valid UTF-8.
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

// items calls fn with each element of the JSON array raw, which the
// tokenizer read before, and reports whether raw read as an array. fn may
// call items again: every element is read before fn is first called.
func (d *decoder) items(raw []byte, fn func([]byte)) bool {
	d.auxBuf = *bytes.NewBuffer(raw)
	d.aux.Reset(&d.auxBuf, decodeOptions...)
	if _, err := d.aux.ReadToken(); err != nil {
		return false
	}
	var elems [][]byte
	for d.aux.PeekKind() != ']' {
		v, err := d.aux.ReadValue()
		if err != nil {
			return false
		}
		elems = append(elems, v)
	}
	for _, v := range elems {
		fn(v)
	}
	return true
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
		if !d.items(raw, func(it []byte) {
			if t := d.valueText(it); t != "" {
				parts = append(parts, t)
			}
		}) {
			return string(raw)
		}
		return strings.Join(parts, ",")
	default:
		return string(raw)
	}
}
