package alert

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/prometheus/common/model"
)

// MergedAnnotation is the annotation that says how many Falco events were
// coalesced into one alert while it waited in a queue.
const MergedAnnotation = "merged_events"

// timeLayout is how go-openapi's strfmt.DateTime, and so Alertmanager's
// own client, writes times. Check keeps years to four digits, so a time
// takes exactly timeLen bytes.
const (
	timeLayout = "2006-01-02T15:04:05.000Z07:00"
	timeLen    = len("2006-01-02T15:04:05.000Z")
)

// The encoding ends with the two times, at a fixed distance from its end,
// so that a queue can send a coalesced alert with other times and a merge
// count by splicing, without decoding it.
const (
	startsKey = `,"startsAt":"`
	endsKey   = `","endsAt":"`
	tailLen   = len(startsKey) + timeLen + len(endsKey) + timeLen + len(`"}`)
)

// Wire is an alert encoded once, as an element of the body of POST
// /api/v2/alerts, with what the queues need to know of it without
// decoding it. The durable spool stores the same bytes. A Wire is not
// changed once made, so the queues of every Alertmanager share it.
type Wire struct {
	// JSON is {"labels":{...},["generatorURL":...,]"annotations":{...},
	// "startsAt":...,"endsAt":...}, labels sorted by name so that equal
	// label sets encode to equal bytes.
	JSON      []byte
	labelsEnd int // JSON[:labelsEnd] encodes the labels
	fp        uint64
	// StartsAt and EndsAt are as encoded, to the millisecond.
	StartsAt, EndsAt time.Time
	Resolve          bool
}

// Encode returns a's encoding. a must have passed Check.
func Encode(a *Alert) *Wire {
	n := 96 + tailLen + len(a.GeneratorURL)
	for _, ls := range []model.LabelSet{a.Labels, a.Annotations} {
		for k, v := range ls {
			n += len(k) + len(v) + 6
		}
	}
	b := make([]byte, 0, n+n/16)
	b = append(b, `{"labels":`...)
	b = appendSorted(b, a.Labels)
	w := &Wire{labelsEnd: len(b), Resolve: a.Resolve,
		StartsAt: time.UnixMilli(a.StartsAt.UnixMilli()).UTC(), EndsAt: time.UnixMilli(a.EndsAt.UnixMilli()).UTC()}
	if a.GeneratorURL != "" {
		b = append(b, `,"generatorURL":`...)
		b = appendString(b, a.GeneratorURL)
	}
	b = append(b, `,"annotations":`...)
	b = appendLabelSet(b, a.Annotations)
	b = appendTimes(b, w.StartsAt, w.EndsAt)
	w.JSON = b
	w.fp = xxhash.Sum64(b[:w.labelsEnd])
	return w
}

// ErrBadWire is returned by Parse for bytes that Encode did not make.
var ErrBadWire = errors.New("not an encoded alert")

// Parse returns the Wire of JSON made by Encode, given where its labels
// end (LabelsEnd) and whether it resolves. It checks the layout, not the
// JSON within.
func Parse(b []byte, labelsEnd int, resolve bool) (*Wire, error) {
	if labelsEnd < len(`{"labels":{}`) || labelsEnd+len(`,"annotations":{}`)+tailLen > len(b) ||
		!bytes.HasPrefix(b, []byte(`{"labels":{`)) || b[labelsEnd-1] != '}' {
		return nil, ErrBadWire
	}
	tail := b[len(b)-tailLen:]
	if !bytes.HasPrefix(tail, []byte(startsKey)) || b[len(b)-tailLen-1] != '}' ||
		string(tail[len(startsKey)+timeLen:len(startsKey)+timeLen+len(endsKey)]) != endsKey || string(tail[tailLen-2:]) != `"}` {
		return nil, ErrBadWire
	}
	starts, err := time.Parse(timeLayout, string(tail[len(startsKey):len(startsKey)+timeLen]))
	if err != nil {
		return nil, ErrBadWire
	}
	ends, err := time.Parse(timeLayout, string(tail[tailLen-2-timeLen:tailLen-2]))
	if err != nil {
		return nil, ErrBadWire
	}
	return &Wire{JSON: b, labelsEnd: labelsEnd, fp: xxhash.Sum64(b[:labelsEnd]), StartsAt: starts.UTC(), EndsAt: ends.UTC(), Resolve: resolve}, nil
}

// LabelsEnd says where the labels of JSON end, for Parse.
func (w *Wire) LabelsEnd() int { return w.labelsEnd }

// Fingerprint identifies the label set.
func (w *Wire) Fingerprint() uint64 { return w.fp }

// SameLabels says whether w and o have the same label set.
func (w *Wire) SameLabels(o *Wire) bool {
	return w.fp == o.fp && bytes.Equal(w.JSON[:w.labelsEnd], o.JSON[:o.labelsEnd])
}

// Expired says whether w is not worth sending any more: its EndsAt has
// passed, so Alertmanager would store it resolved and never notify. A
// resolve is always worth sending.
func (w *Wire) Expired(now time.Time) bool {
	return !w.Resolve && !w.EndsAt.After(now)
}

// With returns the encoding of w with other times and, when merged is
// more than one, the merge count as the MergedAnnotation annotation.
func (w *Wire) With(startsAt, endsAt time.Time, merged int) []byte {
	if merged <= 1 && startsAt.Equal(w.StartsAt) && endsAt.Equal(w.EndsAt) {
		return w.JSON
	}
	annEnd := len(w.JSON) - tailLen - 1 // the annotations' closing brace
	b := make([]byte, 0, len(w.JSON)+len(MergedAnnotation)+24)
	b = append(b, w.JSON[:annEnd]...)
	if merged > 1 {
		if w.JSON[annEnd-1] != '{' {
			b = append(b, ',')
		}
		b = append(b, `"`+MergedAnnotation+`":"`...)
		b = strconv.AppendInt(b, int64(merged), 10)
		b = append(b, '"')
	}
	b = append(b, '}')
	return appendTimes(b, startsAt, endsAt)
}

func appendTimes(b []byte, startsAt, endsAt time.Time) []byte {
	b = append(b, startsKey...)
	b = startsAt.UTC().AppendFormat(b, timeLayout)
	b = append(b, endsKey...)
	b = endsAt.UTC().AppendFormat(b, timeLayout)
	return append(b, `"}`...)
}

// JoinBatch makes the JSON array of a POST body from encoded alerts.
func JoinBatch(encs [][]byte) []byte {
	n := 2 + len(encs)
	for _, e := range encs {
		n += len(e)
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, e := range encs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e...)
	}
	return append(b, ']')
}

func appendSorted(b []byte, ls model.LabelSet) []byte {
	var buf [16]model.LabelName
	names := buf[:0]
	for n := range ls {
		names = append(names, n)
	}
	slices.Sort(names)
	b = append(b, '{')
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, string(n))
		b = append(b, ':')
		b = appendString(b, string(ls[n]))
	}
	return append(b, '}')
}

func appendLabelSet(b []byte, ls model.LabelSet) []byte {
	b = append(b, '{')
	first := true
	for n, v := range ls {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, string(n))
		b = append(b, ':')
		b = appendString(b, string(v))
	}
	return append(b, '}')
}

// appendString quotes s as JSON. Invalid UTF-8, which the mapping never
// makes, would be replaced with U+FFFD.
func appendString(b []byte, s string) []byte {
	b, _ = jsontext.AppendQuote(b, s)
	return b
}
