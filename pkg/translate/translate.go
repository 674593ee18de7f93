// Package translate runs Falco events through a mapping without sending
// anything: what the translate command prints and POST /api/v1/translate
// answers. Both call Body, which reads what the server's pipeline does
// (pipeline.Evaluate), so none of the three can disagree.
package translate

import (
	"fmt"
	"time"

	"github.com/prometheus/alertmanager/api/v2/models"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/pipeline"
)

// Kinds of Note.
const (
	KindInvalid = "invalid" // the event is not a valid Falco event
	KindMapping = "mapping" // a template failed on the event; the alert was still made
	KindDropped = "dropped" // a filter of the mapping dropped the event
	KindRefused = "refused" // valid, but its alert cannot be sent (the server answers 400)
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
// newline-delimited) and maps and checks each valid event as the server
// does on receiving it at received: both read pipeline.Evaluate.
func Body(m *mapping.Mapping, body []byte, received time.Time, lim falco.Limits) Result {
	res := Result{Alerts: models.PostableAlerts{}, AlertEvents: []int{}, Valid: true}
	b := pipeline.Evaluate(m, body, received, lim)
	// The invalid and refused events first, then the notes on the others.
	for i := range b.Outcomes {
		o := &b.Outcomes[i]
		if o.Err == nil {
			continue
		}
		res.Valid = false
		kind := KindInvalid
		if o.Fate == pipeline.Refused {
			kind = KindRefused
		}
		res.Notes = append(res.Notes, Note{Kind: kind, Index: o.Index, Line: o.Line, Message: o.Err.Error()})
	}
	if b.TooMany {
		res.Valid = false
		res.Notes = append(res.Notes, Note{Kind: KindInvalid, Index: b.Received,
			Message: (&falco.Error{Index: b.Received, Expected: fmt.Sprintf("at most %d events", lim.MaxEvents)}).Error()})
	}
	for i := range b.Outcomes {
		o := &b.Outcomes[i]
		for _, err := range o.MapErrors {
			res.Notes = append(res.Notes, Note{Kind: KindMapping, Index: o.Index, Line: o.Line,
				Message: fmt.Sprintf("event %d (line %d): mapping: %v", o.Index, o.Line, err)})
		}
		switch o.Fate {
		case pipeline.Dropped:
			res.Notes = append(res.Notes, Note{Kind: KindDropped, Index: o.Index, Line: o.Line,
				Message: fmt.Sprintf("event %d (line %d): dropped by the mapping (%s)", o.Index, o.Line, o.DropReason)})
		case pipeline.Alerted:
			res.Alerts = append(res.Alerts, o.Alert.Postable())
			res.AlertEvents = append(res.AlertEvents, o.Index)
		}
	}
	return res
}
