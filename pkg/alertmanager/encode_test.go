package alertmanager

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/prometheus/common/model"
)

// TestAppendJSONMatchesTheAPITypes checks the encoder against what
// Alertmanager's own types marshal to: both decode to the same
// PostableAlerts, for plain, empty and hostile values.
func TestAppendJSONMatchesTheAPITypes(t *testing.T) {
	loc := time.FixedZone("skewed", 5*3600+1800)
	alerts := []*Alert{
		{Labels: model.LabelSet{"alertname": "A"}, StartsAt: time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.UTC), EndsAt: time.Date(2026, 1, 2, 3, 14, 5, 0, loc)},
		{Labels: model.LabelSet{}, Annotations: model.LabelSet{}, StartsAt: time.Unix(0, 0)},
		{
			Labels:       model.LabelSet{"alertname": "B", "pod_name": `<script>"x"</script>`, "zz": "\u2028\t\n\\"},
			Annotations:  model.LabelSet{"description": "a & b > c {{ id }} \x01 é 😀", "summary": model.LabelValue(strings.Repeat("long ", 1000))},
			StartsAt:     time.Date(2026, 12, 1, 23, 59, 59, 999_999_999, time.UTC),
			EndsAt:       time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
			GeneratorURL: "https://falco.example.com/events?rule=Terminal%20shell&x=<y>",
		},
	}
	got, err := Encode(alerts)
	if err != nil {
		t.Fatal(err)
	}
	api := make(models.PostableAlerts, len(alerts))
	for i, a := range alerts {
		api[i] = a.Postable()
	}
	want, err := json.Marshal(api)
	if err != nil {
		t.Fatal(err)
	}
	var fromGot, fromWant models.PostableAlerts
	if err := json.Unmarshal(got, &fromGot); err != nil {
		t.Fatalf("encoded body is not valid: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &fromWant); err != nil {
		t.Fatal(err)
	}
	for i := range fromWant {
		g, w := fromGot[i], fromWant[i]
		if !reflect.DeepEqual(g.Labels, w.Labels) || !reflect.DeepEqual(g.Annotations, w.Annotations) ||
			g.GeneratorURL != w.GeneratorURL || !time.Time(g.StartsAt).Equal(time.Time(w.StartsAt)) || !time.Time(g.EndsAt).Equal(time.Time(w.EndsAt)) {
			t.Errorf("alert %d:\n got %s\nwant %s", i, got, want)
		}
	}
	// The raw forms differ only in key order and escaping; no key is
	// missing or extra.
	var rawGot, rawWant []map[string]json.RawMessage
	_ = json.Unmarshal(got, &rawGot)
	_ = json.Unmarshal(want, &rawWant)
	for i := range rawWant {
		if len(rawGot[i]) != len(rawWant[i]) {
			t.Errorf("alert %d has keys %v, want those of %v", i, keys(rawGot[i]), keys(rawWant[i]))
		}
	}
}

func keys(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// BenchmarkEncode encodes a batch of 256 alerts of the size the shipped
// mapping makes, with go-openapi's marshalling (before) and AppendJSON.
func BenchmarkEncode(b *testing.B) {
	alerts := make([]*Alert, 256)
	for i := range alerts {
		alerts[i] = &Alert{
			Labels: model.LabelSet{"alertname": "TerminalShellInContainer", "falco_rule": "Terminal shell in container", "severity": "warning",
				"priority": "notice", "source": "syscall", "hostname": "node-1", "namespace": "default", "pod_name": model.LabelValue("pod-" + strings.Repeat("x", i%7)), "container_name": "app"},
			Annotations: model.LabelSet{"summary": "Terminal shell in container in pod default/pod (container app)", "description": model.LabelValue(strings.Repeat("A shell was spawned in a container with an attached terminal ", 4)),
				"command": "bash -il", "user": "root", "process": "/bin/bash", "parent_process": "runc", "container_image": "nginx:1.27",
				"container_id": "a1b2c3d4e5f6", "tags": "container,shell,mitre_execution", "event_time": "2026-01-02T03:04:05.678901234Z",
				"output_fields": model.LabelValue(`{"container.id":"a1b2c3d4e5f6","proc.cmdline":"bash -il","user.name":"root"}`)},
			StartsAt: time.Now(), EndsAt: time.Now().Add(10 * time.Minute),
		}
	}
	b.Run("go-openapi", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			api := make(models.PostableAlerts, len(alerts))
			for i, a := range alerts {
				api[i] = a.Postable()
			}
			if _, err := json.Marshal(api); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Encode(alerts); err != nil {
				b.Fatal(err)
			}
		}
	})
}
