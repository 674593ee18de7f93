package alert

import (
	"github.com/go-openapi/strfmt"
	"github.com/prometheus/alertmanager/api/v2/models"
)

// Postable returns the alert as Alertmanager's API type, for what shows
// alerts to people (translate, the playground); the queues send Encode's
// bytes instead.
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
