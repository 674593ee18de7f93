package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/prometheus/alertmanager/api/v2/models"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
)

// MaxEvents is the most events one Request may hold.
const MaxEvents = 100

// Request is the body of POST /api/v1/translate.
type Request struct {
	// Event is a Falco event (or an array, or newline-delimited events),
	// as JSON or as a string holding the JSON.
	Event json.RawMessage `json:"event"`
	// Mapping is a mapping file; absent, the running mapping.
	Mapping *string `json:"mapping,omitempty"`
}

// Answer is the answer of POST /api/v1/translate.
type Answer struct {
	Alerts models.PostableAlerts `json:"alerts"`
	// AlertEvents gives, for each alert, the index of its event.
	AlertEvents []int   `json:"alert_events"`
	Errors      []Error `json:"errors"`
}

// Error is one problem: the mapping does not compile (kind
// "mapping_file", with the line of the file), an event is invalid
// ("invalid", with the line of the event text), a template failed on an
// event ("mapping"), or the mapping dropped it ("dropped").
type Error struct {
	Kind    string `json:"kind"`
	Line    int    `json:"line,omitempty"`
	Index   *int   `json:"index,omitempty"`
	Message string `json:"message"`
}

// KindMappingFile is the Error kind of a mapping that does not compile.
const KindMappingFile = "mapping_file"

// MappingFile is the name errors give the mapping of a Request.
const MappingFile = "mapping.yaml"

var fileLine = regexp.MustCompile(`^` + regexp.QuoteMeta(MappingFile) + `:(\d+):`)

// EventBytes returns the event text of a request: the JSON as it is, or
// the string holding it.
func (r *Request) EventBytes() ([]byte, error) {
	event := bytes.TrimSpace(r.Event)
	if len(event) > 0 && event[0] == '"' {
		var s string
		if err := json.Unmarshal(event, &s); err != nil {
			return nil, fmt.Errorf("event: %w", err)
		}
		event = bytes.TrimSpace([]byte(s))
	}
	if len(event) == 0 || string(event) == "null" {
		return nil, errors.New("event: missing: expected a Falco event as JSON")
	}
	return event, nil
}

// API answers a Request: it compiles its mapping, or takes running when
// the request has none, and translates its events as Body does.
func API(req Request, running *mapping.Mapping, received time.Time) (Answer, error) {
	ans := Answer{Alerts: models.PostableAlerts{}, AlertEvents: []int{}, Errors: []Error{}}
	event, err := req.EventBytes()
	if err != nil {
		return ans, err
	}
	m := running
	if req.Mapping != nil {
		m, err = mapping.Parse(MappingFile, []byte(*req.Mapping))
		if err != nil {
			for _, e := range splitErrors(err) {
				te := Error{Kind: KindMappingFile, Message: e.Error()}
				if sm := fileLine.FindStringSubmatch(te.Message); sm != nil {
					te.Line, _ = strconv.Atoi(sm[1])
				}
				ans.Errors = append(ans.Errors, te)
			}
			return ans, nil
		}
	}
	if m == nil {
		return ans, errors.New("mapping: missing")
	}
	res := Body(m, event, received, falco.Limits{MaxEvents: MaxEvents})
	ans.Alerts, ans.AlertEvents = res.Alerts, res.AlertEvents
	for _, n := range res.Notes {
		idx := n.Index
		te := Error{Kind: n.Kind, Index: &idx, Message: n.Message}
		if n.Kind == KindInvalid {
			te.Line = n.Line
		}
		ans.Errors = append(ans.Errors, te)
	}
	return ans, nil
}

func splitErrors(err error) []error {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range joined.Unwrap() {
			out = append(out, splitErrors(e)...)
		}
		return out
	}
	return []error{err}
}
