// Package alertmanager delivers alerts to Alertmanager's v2 API: the alert
// type, its wire form, the HTTP client, and one bounded, batching, retrying
// queue per Alertmanager.
package alertmanager

import (
	"time"

	"github.com/go-openapi/strfmt"
	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/prometheus/common/model"
)

// Alert is one alert as the bridge sends it. Its identity, for Alertmanager
// and for coalescing in the queues, is its label set. An Alert is not
// changed once it has been handed to a Manager.
type Alert struct {
	Labels       model.LabelSet
	Annotations  model.LabelSet
	StartsAt     time.Time
	EndsAt       time.Time
	GeneratorURL string
	// Resolve marks an alert that ends one sent before (its EndsAt is when
	// it ended, often past). It is delivered even after EndsAt, as that is
	// what makes Alertmanager resolve the alert it holds, and a queued
	// alert with the same labels takes its EndsAt. Not kept by the durable
	// queue.
	Resolve bool
}

// expired says whether a is not worth sending any more: its EndsAt has
// passed, so Alertmanager would store it resolved and never notify.
func (a *Alert) expired(now time.Time) bool {
	return !a.Resolve && !a.EndsAt.After(now)
}

// Postable returns the alert as Alertmanager's API type, which AppendJSON
// writes without it.
func (a *Alert) Postable() *models.PostableAlert {
	labels := make(models.LabelSet, len(a.Labels))
	for k, v := range a.Labels {
		labels[string(k)] = string(v)
	}
	var annotations models.LabelSet
	if len(a.Annotations) > 0 {
		annotations = make(models.LabelSet, len(a.Annotations))
		for k, v := range a.Annotations {
			annotations[string(k)] = string(v)
		}
	}
	return &models.PostableAlert{
		// Labels must never be null: Alertmanager rejects the whole
		// batch with 422 when one alert has no labels key.
		Alert:       models.Alert{Labels: labels, GeneratorURL: strfmt.URI(a.GeneratorURL)},
		Annotations: annotations,
		StartsAt:    strfmt.DateTime(a.StartsAt),
		EndsAt:      strfmt.DateTime(a.EndsAt),
	}
}
