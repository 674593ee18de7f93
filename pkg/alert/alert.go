// Package alert is the alert model of falco-am-bridge: the Alert the
// mapping makes, the checks it must pass before it is queued, and its one
// encoding, Wire: the JSON element of Alertmanager's POST /api/v2/alerts
// body, which the durable spool stores and every queue sends as it is.
package alert

import (
	"fmt"
	"time"

	"github.com/prometheus/common/model"
)

// Alert is one alert as the bridge sends it. Its identity, for
// Alertmanager and for coalescing in the queues, is its label set.
type Alert struct {
	Labels       model.LabelSet `json:"labels"`
	Annotations  model.LabelSet `json:"annotations,omitempty"`
	StartsAt     time.Time      `json:"startsAt"`
	EndsAt       time.Time      `json:"endsAt"`
	GeneratorURL string         `json:"generatorURL,omitempty"`
	// Resolve marks an alert that ends one sent before (its EndsAt is when
	// it ended, often past). It is delivered even after EndsAt, as that is
	// what makes Alertmanager resolve the alert it holds, and a queued
	// alert with the same labels takes its EndsAt.
	Resolve bool `json:"-"`
}

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

// Check reports whether a can be encoded: JSON (RFC 3339) holds only the
// years 0 to 9999, and Alertmanager refuses an alert without labels. An
// alert that fails it must not be queued.
func (a *Alert) Check() error {
	if len(a.Labels) == 0 {
		return &CheckError{Field: "labels", msg: "at least one label (the mapping made none)"}
	}
	for _, f := range []struct {
		name string
		t    time.Time
	}{{"startsAt", a.StartsAt}, {"endsAt", a.EndsAt}} {
		if y := f.t.UTC().Year(); y < 0 || y > 9999 {
			return &CheckError{Field: f.name, Got: fmt.Sprintf("year %d", y), msg: "a time between the years 0 and 9999"}
		}
	}
	return nil
}
