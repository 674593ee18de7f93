// Package status keeps what the status page and GET /api/v1/status show:
// the last events received and what became of each, in memory only, and
// the figures of the bridge read back from its own metrics.
package status

import (
	"bytes"
	"encoding/json"
	"sync"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
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
	// Alert is set when the outcome is alert.
	Alert *Alert `json:"alert,omitempty"`
	// DropReason is set when the outcome is dropped.
	DropReason string `json:"drop_reason,omitempty"`
	// Errors are why the event was rejected, or the templates that failed
	// on it (the alert was still made).
	Errors []string `json:"errors,omitempty"`
	// Event is the event as decoded, as Falco JSON; for a rejected event,
	// the text of the body it came in.
	Event string `json:"event"`
	// EventTruncated says that Event was cut at MaxRawBytes.
	EventTruncated bool `json:"event_truncated,omitempty"`

	size int
}

// Alert is the alert an event became.
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
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
	if maxEvents <= 0 {
		maxEvents = DefaultRecentEvents
	}
	if maxBytes <= 0 {
		maxBytes = DefaultRecentBytes
	}
	return &Recent{entries: make([]Entry, maxEvents), maxBytes: maxBytes, nextID: 1}
}

// Mapped records a valid event and the result of mapping it.
func (r *Recent) Mapped(ev *falco.Event, received time.Time, res mapping.Result) {
	if r == nil {
		return
	}
	e := Entry{
		Received: received, Rule: ev.Rule, Priority: ev.Priority.String(),
		Source: ev.Source, Hostname: ev.Hostname,
	}
	e.Event, e.EventTruncated = capRaw(eventJSON(ev))
	switch {
	case res.Alert != nil:
		e.Outcome = OutcomeAlert
		a := res.Alert
		e.Alert = &Alert{
			Labels: make(map[string]string, len(a.Labels)), Annotations: make(map[string]string, len(a.Annotations)),
			StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: a.GeneratorURL,
		}
		for k, v := range a.Labels {
			e.Alert.Labels[string(k)] = string(v)
			e.size += len(k) + len(v)
		}
		for k, v := range a.Annotations {
			e.Alert.Annotations[string(k)] = string(v)
			e.size += len(k) + len(v)
		}
	default:
		e.Outcome = OutcomeDropped
		e.DropReason = res.Dropped
	}
	for _, err := range res.Errors {
		e.Errors = append(e.Errors, err.Error())
	}
	r.add(e)
}

// Rejected records the invalid events of a body: the error, and the text
// they came in (the whole body when it held one event, else the line the
// event starts on).
func (r *Recent) Rejected(body []byte, errs []*falco.Error, received time.Time) {
	if r == nil {
		return
	}
	for i, fe := range errs {
		if i == maxRejectedPerBody {
			break
		}
		e := Entry{Received: received, Outcome: OutcomeRejected, Errors: []string{fe.Error()}}
		text := body
		if bytes.Count(bytes.TrimSpace(body), []byte("\n")) > 0 {
			text = lineOf(body, fe.Line)
		}
		e.Event, e.EventTruncated = capRaw(bytes.TrimSpace(text))
		r.add(e)
	}
}

func (r *Recent) add(e Entry) {
	e.size += entryOverhead + len(e.Rule) + len(e.Priority) + len(e.Source) + len(e.Hostname) + len(e.Event) + len(e.DropReason)
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
	defer r.mu.Unlock()
	out := make([]Entry, r.n)
	for i := range r.n {
		out[r.n-1-i] = r.entries[(r.head+i)%len(r.entries)]
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

// eventJSON writes the event back as the flat Falco JSON it was decoded
// into, output fields exactly as sent.
func eventJSON(ev *falco.Event) []byte {
	var b bytes.Buffer
	b.Grow(256 + len(ev.Output))
	// Not HTML-escaped: the page escapes, and a command line should
	// read as it was sent.
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	val := func(v any) {
		_ = enc.Encode(v)
		b.Truncate(b.Len() - 1) // Encode ends with a newline
	}
	str := func(key, v string, first bool) {
		if !first {
			b.WriteByte(',')
		}
		val(key)
		b.WriteByte(':')
		val(v)
	}
	b.WriteByte('{')
	str("time", ev.Time.Format(time.RFC3339Nano), true)
	str("rule", ev.Rule, false)
	str("priority", ev.Priority.String(), false)
	for _, kv := range [][2]string{{"source", ev.Source}, {"hostname", ev.Hostname}, {"output", ev.Output}, {"message", ev.Message}, {"uuid", ev.UUID}} {
		if kv[1] != "" {
			str(kv[0], kv[1], false)
		}
	}
	if len(ev.Tags) > 0 {
		b.WriteString(`,"tags":`)
		val(ev.Tags)
	}
	b.WriteString(`,"output_fields":`)
	b.WriteString(ev.Fields.JSON())
	b.WriteByte('}')
	return b.Bytes()
}

// capRaw copies b into a string of at most MaxRawBytes, never cutting a
// UTF-8 character.
func capRaw(b []byte) (string, bool) {
	if len(b) <= MaxRawBytes {
		return string(b), false
	}
	return mapping.Truncate(string(b[:MaxRawBytes+1]), MaxRawBytes), true
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
