package alertmanager

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/go-openapi/strfmt"
	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/prometheus/common/model"
)

func TestEncode(t *testing.T) {
	start := time.Date(2026, 5, 25, 13, 44, 5, 478445995, time.UTC)
	end := start.Add(15 * time.Minute)
	cet := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		name  string
		alert *Alert
		// want is the alert as Alertmanager reads it.
		wantLabels      map[string]string
		wantAnnotations map[string]string
		wantGenerator   string
	}{
		{
			name: "full",
			alert: &Alert{
				Labels:       labelSet("alertname", "Terminal shell in container", "severity", "warning"),
				Annotations:  model.LabelSet{"cmdline": `bash -c "echo {{ id }}"`, "summary": "ünïcode ✓"},
				StartsAt:     start,
				EndsAt:       end,
				GeneratorURL: "http://falco.example/rules?r=1&x=2",
			},
			wantLabels:      map[string]string{"alertname": "Terminal shell in container", "severity": "warning"},
			wantAnnotations: map[string]string{"cmdline": `bash -c "echo {{ id }}"`, "summary": "ünïcode ✓"},
			wantGenerator:   "http://falco.example/rules?r=1&x=2",
		},
		{
			name:       "no annotations",
			alert:      &Alert{Labels: labelSet("alertname", "A"), StartsAt: start, EndsAt: end},
			wantLabels: map[string]string{"alertname": "A"},
		},
		{
			name:       "empty labels",
			alert:      &Alert{Labels: model.LabelSet{}, StartsAt: start, EndsAt: end},
			wantLabels: map[string]string{},
		},
		{
			name:       "nil labels",
			alert:      &Alert{StartsAt: start, EndsAt: end},
			wantLabels: map[string]string{},
		},
		{
			name:       "times in another zone",
			alert:      &Alert{Labels: labelSet("alertname", "A"), StartsAt: start.In(cet), EndsAt: end.In(cet)},
			wantLabels: map[string]string{"alertname": "A"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, err := Encode([]*Alert{tc.alert})
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !json.Valid(body) {
				t.Fatalf("Encode gave invalid JSON: %s", body)
			}
			if err := validWire(body); err != nil {
				t.Fatalf("Alertmanager would answer 422: %v\n%s", err, body)
			}
			var raw []map[string]json.RawMessage
			if err := json.Unmarshal(body, &raw); err != nil {
				t.Fatal(err)
			}
			if len(raw) != 1 {
				t.Fatalf("%d alerts in the body, want 1", len(raw))
			}
			for _, key := range []string{"startsAt", "endsAt"} {
				var s string
				if err := json.Unmarshal(raw[0][key], &s); err != nil {
					t.Fatalf("%s: %v (%s)", key, err, raw[0][key])
				}
				if _, err := time.Parse(time.RFC3339, s); err != nil {
					t.Errorf("%s %q is not RFC3339: %v", key, s, err)
				}
			}

			var got models.PostableAlerts
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body does not decode as PostableAlerts: %v\n%s", err, body)
			}
			if err := got.Validate(strfmt.Default); err != nil {
				t.Errorf("body fails Alertmanager's schema validation: %v\n%s", err, body)
			}
			a := got[0]
			if !equalMaps(a.Labels, tc.wantLabels) {
				t.Errorf("labels = %v, want %v", a.Labels, tc.wantLabels)
			}
			if !equalMaps(a.Annotations, tc.wantAnnotations) {
				t.Errorf("annotations = %v, want %v", a.Annotations, tc.wantAnnotations)
			}
			if string(a.GeneratorURL) != tc.wantGenerator {
				t.Errorf("generatorURL = %q, want %q", a.GeneratorURL, tc.wantGenerator)
			}
			// The wire keeps milliseconds, which is all Alertmanager needs.
			if got, want := time.Time(a.StartsAt), tc.alert.StartsAt.Truncate(time.Millisecond); !got.Equal(want) {
				t.Errorf("startsAt = %v, want %v", got, want)
			}
			if got, want := time.Time(a.EndsAt), tc.alert.EndsAt.Truncate(time.Millisecond); !got.Equal(want) {
				t.Errorf("endsAt = %v, want %v", got, want)
			}
		})
	}
}

func TestEncodeEmptyLabelsAreAnObject(t *testing.T) {
	body, err := Encode([]*Alert{{StartsAt: time.Now(), EndsAt: time.Now().Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if got := string(raw[0]["labels"]); got != "{}" {
		t.Errorf(`labels on the wire = %q, want "{}" (Alertmanager answers 422 to null or missing labels)`, got)
	}
}

func TestEncodeBatch(t *testing.T) {
	alerts := []*Alert{testAlert("n", "1"), testAlert("n", "2"), testAlert("n", "3")}
	body, err := Encode(alerts)
	if err != nil {
		t.Fatal(err)
	}
	var got models.PostableAlerts
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d alerts, want 3", len(got))
	}
	for i, a := range got {
		if want := alerts[i].Labels["n"]; a.Labels["n"] != string(want) {
			t.Errorf("alert %d has n=%q, want %q: order must be kept", i, a.Labels["n"], want)
		}
	}

	body, err = Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != "[]" {
		t.Errorf("Encode(nil) = %s, want []", body)
	}
}

func equalMaps(got models.LabelSet, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			return false
		}
	}
	return true
}
