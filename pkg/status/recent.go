// Package status keeps what the status page and GET /api/v1/status show:
// the last events received and what became of each, in memory only, and
// the figures of the bridge read back from its own metrics.
package status

import (
	"bytes"
	"sync"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/defaults"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/pipeline"
)

// Defaults for Recent.
const (
	DefaultRecentEvents = 100
	DefaultRecentBytes  = 4 << 20
	// MaxRawBytes caps the raw event kept per entry, so that one huge
	// event cannot push every other out of the byte budget.
	MaxRawBytes = 16 << 10
	// maxRejectedPerBody caps the invalid events of one body that are
	// kept, so that one broken body does not push out every good event.
	maxRejectedPerBody = 10
	// entryOverhead is what an entry costs besides its strings.
	entryOverhead = 256
)

// What became of an event.
const (
	OutcomeAlert    = "alert"    // made an alert, queued for every Alertmanager
	OutcomeDropped  = "dropped"  // a filter of the mapping dropped it
	OutcomeRejected = "rejected" // invalid: answered with 400
	// OutcomeRefused: valid, but its alert cannot be sent (a time
	// outside the years 0 to 9999): answered with 400.
	OutcomeRefused = "refused"
	// OutcomeUnavailable: made an alert, but the body was not taken
	// (the durable queue full or failing, shutdown): answered with 503.
	OutcomeUnavailable = "unavailable"
)

// Entry is one event received and what became of it.
type Entry struct {
	ID       uint64    `json:"id"`
	Received time.Time `json:"received"`
	Rule     string    `json:"rule,omitempty"`
	Priority string    `json:"priority,omitempty"`
	Source   string    `json:"source,omitempty"`
	Hostname string    `json:"hostname,omitempty"`
	Outcome  string    `json:"outcome"`
	// Alert is set when the outcome is alert: the alert as made (alerts
	// are not changed once queued), shown in the JSON the bridge POSTs.
	Alert *alert.Alert `json:"alert,omitempty"`
	raw   []byte       // owned; List fills Event from it
	// DropReason is set when the outcome is dropped.
	DropReason string `json:"drop_reason,omitempty"`
	// Errors are why the event was rejected, or the templates that failed
	// on it (the alert was still made).
	Errors []string `json:"errors,omitempty"`
	// Event is the event's JSON as it came in; for an invalid event, the
	// text of the body it came in (the line it starts on, in a body of
	// many lines).
	Event string `json:"event"`
	// EventTruncated says that Event was cut at MaxRawBytes.
	EventTruncated bool `json:"event_truncated,omitempty"`

	size int
}

// Recent is a bounded ring of the last events, by count and by bytes. A nil
// *Recent records nothing, so the bridge runs the same with the UI off.
type Recent struct {
	mu       sync.Mutex
	entries  []Entry // ring; oldest at head
	head, n  int
	bytes    int
	maxBytes int
	nextID   uint64
}

// NewRecent returns a ring of at most maxEvents entries and about maxBytes
// bytes; zero values take the defaults.
func NewRecent(maxEvents, maxBytes int) *Recent {
	defaults.Set(&maxEvents, DefaultRecentEvents)
	defaults.Set(&maxBytes, DefaultRecentBytes)
	return &Recent{entries: make([]Entry, maxEvents), maxBytes: maxBytes, nextID: 1}
}

// Record records what became of each event of a body: it implements
// pipeline.Recorder. A valid event is kept as it came in; an invalid one as
// the text it came in (the whole body when it held one event, else the
// line the event starts on), at most maxRejectedPerBody of them a body.
func (r *Recent) Record(body []byte, b *pipeline.Body, received time.Time) {
	if r == nil {
		return
	}
	oneLine := bytes.Count(bytes.TrimSpace(body), []byte("\n")) == 0
	bad := 0
	for i := range b.Outcomes {
		o := &b.Outcomes[i]
		e := Entry{Received: received}
		if ev := o.Event; ev != nil {
			e.Rule, e.Priority, e.Source, e.Hostname = ev.Rule, ev.Priority.String(), ev.Source, ev.Hostname
			e.raw, e.EventTruncated = capRaw(bytes.Clone(bytes.TrimSpace(ev.Raw)))
		} else {
			if bad++; bad > maxRejectedPerBody {
				continue
			}
			text := body
			if !oneLine {
				text = lineOf(body, o.Line)
			}
			e.raw, e.EventTruncated = capRaw(bytes.Clone(bytes.TrimSpace(text)))
		}
		switch o.Fate {
		case pipeline.Alerted:
			e.Outcome = OutcomeAlert
			if b.Err != nil {
				e.Outcome = OutcomeUnavailable
				e.Errors = append(e.Errors, "not taken, answered 503: "+b.Err.Error())
			}
			e.Alert = o.Alert
			for k, v := range o.Alert.Labels {
				e.size += len(k) + len(v)
			}
			for k, v := range o.Alert.Annotations {
				e.size += len(k) + len(v)
			}
		case pipeline.Dropped:
			e.Outcome, e.DropReason = OutcomeDropped, o.DropReason
		case pipeline.Invalid:
			e.Outcome = OutcomeRejected
		case pipeline.Refused:
			e.Outcome = OutcomeRefused
		}
		if o.Err != nil {
			e.Errors = append(e.Errors, o.Err.Error())
		}
		for _, err := range o.MapErrors {
			e.Errors = append(e.Errors, err.Error())
		}
		r.add(e)
	}
}

func (r *Recent) add(e Entry) {
	e.size += entryOverhead + len(e.Rule) + len(e.Priority) + len(e.Source) + len(e.Hostname) + len(e.raw) + len(e.DropReason)
	for _, s := range e.Errors {
		e.size += len(s)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e.ID = r.nextID
	r.nextID++
	for r.n > 0 && (r.n == len(r.entries) || r.bytes+e.size > r.maxBytes) {
		r.bytes -= r.entries[r.head].size
		r.entries[r.head] = Entry{}
		r.head = (r.head + 1) % len(r.entries)
		r.n--
	}
	r.entries[(r.head+r.n)%len(r.entries)] = e
	r.n++
	r.bytes += e.size
}

// List returns the entries, newest first.
func (r *Recent) List() []Entry {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	out := make([]Entry, r.n)
	for i := range r.n {
		out[r.n-1-i] = r.entries[(r.head+i)%len(r.entries)]
	}
	r.mu.Unlock()
	for i := range out {
		out[i].Event = string(out[i].raw)
	}
	return out
}

// Limits returns the bounds of the ring: entries and bytes.
func (r *Recent) Limits() (events, bytes int) {
	if r == nil {
		return 0, 0
	}
	return len(r.entries), r.maxBytes
}

// Bytes returns about how much memory the entries take.
func (r *Recent) Bytes() int {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bytes
}

// capRaw cuts b, which it owns, to at most MaxRawBytes, never inside a
// UTF-8 character.
func capRaw(b []byte) ([]byte, bool) {
	if len(b) <= MaxRawBytes {
		return b, false
	}
	return []byte(mapping.Truncate(string(b[:MaxRawBytes+1]), MaxRawBytes)), true
}

// lineOf returns line n (from 1) of body.
func lineOf(body []byte, n int) []byte {
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(body, '\n')
		if j < 0 {
			return nil
		}
		body = body[j+1:]
	}
	if j := bytes.IndexByte(body, '\n'); j >= 0 {
		body = body[:j]
	}
	return body
}
