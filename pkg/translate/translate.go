// Package translate runs Falco events through a mapping without sending
// anything: what the translate command prints and POST /api/v1/translate
// answers. Both call Body, so the two cannot disagree.
package translate

import (
	"fmt"
	"time"

	"github.com/prometheus/alertmanager/api/v2/models"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
)

// Kinds of Note.
const (
	KindInvalid = "invalid" // the event is not a valid Falco event
	KindMapping = "mapping" // a template failed on the event; the alert was still made
	KindDropped = "dropped" // a filter of the mapping dropped the event
)

// Note is something to say about one event: why it is invalid, a template
// that failed on it, or why it made no alert.
type Note struct {
	Kind    string `json:"kind"`
	Index   int    `json:"index"` // the event's position in the body, from 0
	Line    int    `json:"line"`  // the line of the body it starts on, from 1
	Message string `json:"message"`
}

// Result is what a body of events becomes.
type Result struct {
	// Alerts are the alerts made, in the order of the events.
	Alerts models.PostableAlerts
	// AlertEvents holds, for each alert, the Index of its event.
	AlertEvents []int
	// Notes are the invalid events first, then the notes on valid
	// events in order.
	Notes []Note
	// Valid is false when an event was invalid.
	Valid bool
}

// Body decodes a body of Falco events (one object, an array, or
// newline-delimited) and maps each valid event as the server would on
// receiving it at received.
func Body(m *mapping.Mapping, body []byte, received time.Time, lim falco.Limits) Result {
	res := Result{Alerts: models.PostableAlerts{}, AlertEvents: []int{}, Valid: true}
	dec := falco.DecodeBody(body, lim)
	errs := dec.Errors
	if dec.Unread != nil {
		errs = append(errs, dec.Unread)
	}
	if dec.TooMany {
		errs = append(errs, &falco.Error{Index: dec.Count, Expected: fmt.Sprintf("at most %d events", lim.MaxEvents)})
	}
	for _, e := range errs {
		res.Valid = false
		res.Notes = append(res.Notes, Note{Kind: KindInvalid, Index: e.Index, Line: e.Line, Message: e.Error()})
	}
	for i := range dec.Events {
		ev := &dec.Events[i]
		mr := m.Map(ev, received)
		for _, err := range mr.Errors {
			res.Notes = append(res.Notes, Note{Kind: KindMapping, Index: ev.Index, Line: ev.Line,
				Message: fmt.Sprintf("event %d (line %d): mapping: %v", ev.Index, ev.Line, err)})
		}
		if mr.Alert == nil {
			res.Notes = append(res.Notes, Note{Kind: KindDropped, Index: ev.Index, Line: ev.Line,
				Message: fmt.Sprintf("event %d (line %d): dropped by the mapping (%s)", ev.Index, ev.Line, mr.Dropped)})
			continue
		}
		res.Alerts = append(res.Alerts, mr.Alert.Postable())
		res.AlertEvents = append(res.AlertEvents, ev.Index)
	}
	return res
}
