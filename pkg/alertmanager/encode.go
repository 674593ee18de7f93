package alertmanager

import (
	"github.com/go-json-experiment/json/jsontext"
	"github.com/prometheus/common/model"
)

// timeLayout is how go-openapi's strfmt.DateTime, and so Alertmanager's
// own client, writes times.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// AppendJSON appends the alert as an element of the body of POST
// /api/v2/alerts: what Alertmanager's PostableAlert marshals to, keys in
// no particular order. Each alert is encoded once, when it is queued, and
// batches are the encoded alerts joined.
func (a *Alert) AppendJSON(b []byte) []byte {
	// Labels must never be null: Alertmanager rejects the whole batch
	// with 422 when one alert has no labels key.
	b = append(b, `{"labels":`...)
	b = appendLabelSet(b, a.Labels)
	if len(a.Annotations) > 0 {
		b = append(b, `,"annotations":`...)
		b = appendLabelSet(b, a.Annotations)
	}
	b = append(b, `,"startsAt":"`...)
	b = a.StartsAt.UTC().AppendFormat(b, timeLayout)
	b = append(b, `","endsAt":"`...)
	b = a.EndsAt.UTC().AppendFormat(b, timeLayout)
	b = append(b, '"')
	if a.GeneratorURL != "" {
		b = append(b, `,"generatorURL":`...)
		b = appendString(b, a.GeneratorURL)
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

// encode returns the alert's JSON in a buffer of about the right size.
func (a *Alert) encode() []byte {
	n := 128 + len(a.GeneratorURL)
	for _, ls := range []model.LabelSet{a.Labels, a.Annotations} {
		for k, v := range ls {
			n += len(k) + len(v) + 6
		}
	}
	return a.AppendJSON(make([]byte, 0, n+n/16))
}

// Encode returns the JSON body of POST /api/v2/alerts for alerts.
func Encode(alerts []*Alert) ([]byte, error) {
	encs := make([][]byte, len(alerts))
	for i, a := range alerts {
		encs[i] = a.encode()
	}
	return joinBatch(encs), nil
}

// joinBatch makes a JSON array of encoded alerts.
func joinBatch(encs [][]byte) []byte {
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
