// Package pipeline is what becomes of one body of Falco events: it is
// decoded, each valid event is mapped to an alert, each alert is checked,
// and, in the bridge, the alerts are stored and queued for every
// Alertmanager. It gives one Outcome per event, in the order of the body,
// which the ingest answer, the translate API and command, the playground
// and the status page all read: they cannot disagree, and each event is
// recorded once, with its real fate.
package pipeline

import (
	"errors"
	"fmt"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
)

// Fate is what became of one event.
type Fate uint8

const (
	// Alerted means the event made an alert (queued, when the body was
	// Run and Body.Err is nil).
	Alerted Fate = iota
	// Dropped means a filter of the mapping (min_priority, override)
	// dropped it.
	Dropped
	// Invalid means it is not a valid Falco event.
	Invalid
	// Refused means it is valid, but its alert cannot be sent
	// (alert.Check).
	Refused
)

func (f Fate) String() string {
	switch f {
	case Alerted:
		return "alert"
	case Dropped:
		return "dropped"
	case Invalid:
		return "invalid"
	case Refused:
		return "refused"
	}
	return fmt.Sprintf("Fate(%d)", uint8(f))
}

// Outcome is one event of a body and what became of it.
type Outcome struct {
	Fate Fate
	// Index and Line are the event's position in the body, from 0, and
	// the line it starts on, from 1.
	Index, Line int
	// Event is the decoded event; nil when Invalid.
	Event *falco.Event
	// Alert is the alert made, when Alerted.
	Alert *alert.Alert
	// DropReason says which filter dropped the event, when Dropped.
	DropReason string
	// Err says why the event is Invalid or Refused.
	Err *falco.Error
	// MapErrors are the templates that failed on the event; the alert
	// was made without their values.
	MapErrors []error
}

// Body is what became of a body of events.
type Body struct {
	// Outcomes are in the order of the body. Invalid events beyond the
	// decoder's error limit have none; Rejected counts them all.
	Outcomes []Outcome
	// Received is the number of events read, valid or not.
	Received int
	// Rejected counts the Invalid and Refused events.
	Rejected int
	// Alerts counts the Alerted events, Dropped the Dropped ones.
	Alerts, Dropped int
	// MappingErrors counts the templates that failed, over every event.
	MappingErrors int
	// TooMany is set when the body held more events than allowed: the
	// outcomes are those of the events up to the limit, and Run takes
	// none of them.
	TooMany bool
	// Unread, when set, is where the body broke: nothing after it was
	// read. It is also the last Invalid outcome.
	Unread *falco.Error
	// Queues is the number of Alertmanager queues each alert went to; 0
	// while none is known (the alerts are held until one is).
	Queues int
	// Err is set when the alerts could not be taken for now (a full
	// durable queue, a failing disk, shutdown): nothing of the body was
	// taken, and the sender should retry.
	Err *Unavailable
}

// Errors returns the errors of the Invalid and Refused events, in order.
func (b *Body) Errors() []*falco.Error {
	var out []*falco.Error
	for i := range b.Outcomes {
		if o := &b.Outcomes[i]; o.Err != nil {
			out = append(out, o.Err)
		}
	}
	return out
}

// Unavailable is why a Body could not be taken for now.
type Unavailable struct {
	// Reason is storage_full, storage_error or shutdown.
	Reason     string
	Err        error
	RetryAfter time.Duration
}

func (u *Unavailable) Error() string { return u.Err.Error() }
func (u *Unavailable) Unwrap() error { return u.Err }

// Evaluate decodes body and maps and checks each valid event as the
// bridge does on receiving it at received, without storing or sending
// anything.
func Evaluate(m *mapping.Mapping, body []byte, received time.Time, lim falco.Limits) *Body {
	dec := falco.DecodeBody(body, lim)
	b := &Body{Received: dec.Count, TooMany: dec.TooMany, Unread: dec.Unread, Rejected: dec.Rejected}
	b.Outcomes = make([]Outcome, 0, len(dec.Events)+len(dec.Errors)+1)
	errs := dec.Errors
	if dec.Unread != nil {
		errs = append(errs, dec.Unread)
	}
	// Merge the valid events and the errors, both in body order.
	for i, j := 0, 0; i < len(dec.Events) || j < len(errs); {
		if j < len(errs) && (i == len(dec.Events) || errs[j].Index < dec.Events[i].Index) {
			e := errs[j]
			b.Outcomes = append(b.Outcomes, Outcome{Fate: Invalid, Index: e.Index, Line: e.Line, Err: e})
			j++
			continue
		}
		b.Outcomes = append(b.Outcomes, mapEvent(m, &dec.Events[i], received))
		i++
	}
	for i := range b.Outcomes {
		o := &b.Outcomes[i]
		b.MappingErrors += len(o.MapErrors)
		switch o.Fate {
		case Alerted:
			b.Alerts++
		case Dropped:
			b.Dropped++
		case Refused:
			b.Rejected++
		}
	}
	return b
}

func mapEvent(m *mapping.Mapping, ev *falco.Event, received time.Time) Outcome {
	o := Outcome{Index: ev.Index, Line: ev.Line, Event: ev}
	res := m.Map(ev, received)
	o.MapErrors = res.Errors
	if res.Alert == nil {
		o.Fate, o.DropReason = Dropped, res.Dropped
	} else if err := res.Alert.Check(); err != nil {
		o.Fate, o.Err = Refused, unsendable(ev, err)
	} else {
		o.Fate, o.Alert = Alerted, res.Alert
	}
	return o
}

// unsendable describes, as an invalid event, why the alert of ev failed
// alert.Check.
func unsendable(ev *falco.Event, err error) *falco.Error {
	fe := &falco.Error{Index: ev.Index, Line: ev.Line}
	ce, ok := errors.AsType[*alert.CheckError](err)
	switch {
	case !ok:
		fe.Expected, fe.Got = "an event whose alert can be sent", err.Error()
	case ce.Field == "startsAt" || ce.Field == "endsAt":
		// startsAt is the event's time; endsAt comes from it too.
		fe.Field, fe.Expected, fe.Got = "time", ce.Expected(), ce.Got
	default:
		fe.Expected, fe.Got = "an event the mapping turns into an alert with "+ce.Expected(), ce.Got
	}
	return fe
}
