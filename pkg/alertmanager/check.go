package alertmanager

import (
	"fmt"
	"time"
)

// CheckError says why an alert cannot be sent: Alertmanager would refuse
// it, or it cannot be written as JSON at all.
type CheckError struct {
	Field string // startsAt, endsAt or labels
	Got   string
	msg   string
}

func (e *CheckError) Error() string { return e.Field + ": " + e.msg }

// Expected says what the field should hold.
func (e *CheckError) Expected() string { return e.msg }

// Check reports whether a can be encoded and stored: JSON (RFC 3339)
// holds only the years 0 to 9999, and Alertmanager refuses an alert
// without labels. An alert that fails it must not be queued: it would be
// refused, and it cannot be written to the durable queue.
func (a *Alert) Check() error {
	if len(a.Labels) == 0 {
		return &CheckError{Field: "labels", msg: "at least one label (the mapping made none)"}
	}
	for _, f := range []struct {
		name string
		t    time.Time
	}{{"startsAt", a.StartsAt}, {"endsAt", a.EndsAt}} {
		if y := f.t.Year(); y < 0 || y > 9999 {
			return &CheckError{Field: f.name, Got: fmt.Sprintf("year %d", y), msg: "a time between the years 0 and 9999"}
		}
	}
	return nil
}
