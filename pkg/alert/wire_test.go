package alert

import (
	"encoding/json"
	"errors"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/prometheus/common/model"
)

func hostile() []*Alert {
	loc := time.FixedZone("skewed", 5*3600+1800)
	return []*Alert{
		{Labels: model.LabelSet{"alertname": "A"}, StartsAt: time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.UTC), EndsAt: time.Date(2026, 1, 2, 3, 14, 5, 0, loc)},
		{Labels: model.LabelSet{}, Annotations: model.LabelSet{}, StartsAt: time.Unix(0, 0)},
		{Labels: nil, StartsAt: time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), EndsAt: time.Date(0, 1, 1, 0, 0, 0, 1, time.UTC)},
		{
			Labels:       model.LabelSet{"alertname": "B", "pod_name": `<script>"x"</script>`, "zz": "\u2028\t\n\\", "a": "}", "b": `","`},
			Annotations:  model.LabelSet{"description": "a & b > c {{ id }} \x01 é 😀", "summary": model.LabelValue(strings.Repeat("long ", 1000)), "end": `"}`},
			StartsAt:     time.Date(2026, 12, 1, 23, 59, 59, 999_999_999, time.UTC),
			EndsAt:       time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
			GeneratorURL: "https://falco.example.com/events?rule=Terminal%20shell&x=<y>",
		},
	}
}

// decodeAPI reads b as Alertmanager does.
func decodeAPI(t *testing.T, b []byte) *models.PostableAlert {
	t.Helper()
	var p models.PostableAlert
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("not a PostableAlert: %v\n%s", err, b)
	}
	return &p
}

func sameAPI(g, w *models.PostableAlert) bool {
	return maps.Equal(g.Labels, w.Labels) && maps.Equal(g.Annotations, w.Annotations) && g.GeneratorURL == w.GeneratorURL &&
		time.Time(g.StartsAt).Equal(time.Time(w.StartsAt)) && time.Time(g.EndsAt).Equal(time.Time(w.EndsAt))
}

// TestEncodeMatchesTheAPITypes checks the encoding against what
// Alertmanager's own types marshal to: both decode to the same
// PostableAlert, for plain, empty and hostile values, to the millisecond
// (what go-openapi writes).
func TestEncodeMatchesTheAPITypes(t *testing.T) {
	for i, a := range hostile() {
		want, err := json.Marshal(a.Postable())
		if err != nil {
			t.Fatal(err)
		}
		w := Encode(a)
		g, wa := decodeAPI(t, w.JSON), decodeAPI(t, want)
		if len(wa.Annotations) == 0 {
			wa.Annotations = nil
		}
		if len(g.Annotations) == 0 {
			g.Annotations = nil
		}
		if len(wa.Labels) == 0 {
			wa.Labels = nil
		}
		if len(g.Labels) == 0 {
			g.Labels = nil
		}
		if !sameAPI(g, wa) {
			t.Errorf("alert %d:\n got %s\nwant %s", i, w.JSON, want)
		}
		var raw map[string]json.RawMessage
		_ = json.Unmarshal(w.JSON, &raw)
		if string(raw["labels"]) == "null" || raw["labels"] == nil {
			t.Errorf("alert %d: labels must never be null or missing: %s", i, w.JSON)
		}
	}
}

// TestEqualLabelsEncodeEqually: the labels are written sorted, so two
// alerts with the same label set have the same label bytes and
// fingerprint, whatever the map order, and different sets differ.
func TestEqualLabelsEncodeEqually(t *testing.T) {
	ls := model.LabelSet{}
	for i := range 12 {
		ls[model.LabelName(string(rune('a'+i)))] = model.LabelValue(strings.Repeat("v", i))
	}
	first := Encode(&Alert{Labels: ls, Annotations: model.LabelSet{"x": "1"}})
	for range 50 {
		again := Encode(&Alert{Labels: maps.Clone(ls), Annotations: model.LabelSet{"x": "2"}})
		if !first.SameLabels(again) || first.Fingerprint() != again.Fingerprint() {
			t.Fatalf("same labels, different encodings:\n%s\n%s", first.JSON, again.JSON)
		}
	}
	other := maps.Clone(ls)
	other["a"] = "w"
	if o := Encode(&Alert{Labels: other}); first.SameLabels(o) {
		t.Fatalf("different labels compare equal")
	}
}

// TestParseReadsWhatEncodeWrote: the spool keeps JSON and LabelsEnd;
// Parse gives back the same Wire, and refuses bytes of another layout.
func TestParseReadsWhatEncodeWrote(t *testing.T) {
	for i, a := range hostile() {
		for _, resolve := range []bool{false, true} {
			a.Resolve = resolve
			w := Encode(a)
			p, err := Parse(w.JSON, w.LabelsEnd(), resolve)
			if err != nil {
				t.Fatalf("alert %d: %v\n%s", i, err, w.JSON)
			}
			if !p.SameLabels(w) || !p.StartsAt.Equal(w.StartsAt) || !p.EndsAt.Equal(w.EndsAt) || p.Resolve != resolve {
				t.Fatalf("alert %d: parsed %+v, want %+v", i, p, w)
			}
			if want := a.StartsAt.Truncate(time.Millisecond); a.StartsAt.Year() > 1 && !p.StartsAt.Equal(want) {
				t.Fatalf("alert %d: startsAt %v, want %v", i, p.StartsAt, want)
			}
		}
	}
	w := Encode(hostile()[3])
	for _, bad := range []struct {
		name      string
		b         []byte
		labelsEnd int
	}{
		{"empty", nil, 0},
		{"labels end out of range", w.JSON, len(w.JSON) + 1},
		{"labels end inside the labels", w.JSON, w.LabelsEnd() - 1},
		{"cut", w.JSON[:len(w.JSON)-1], w.LabelsEnd()},
		{"another document", []byte(`{"labels":{"a":"b"},"annotations":{},"startsAt":"x","endsAt":"y","xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx":1}`), 19},
		{"bad time", []byte(strings.Replace(string(w.JSON), "2026-12", "2026-13", 1)), w.LabelsEnd()},
	} {
		if _, err := Parse(bad.b, bad.labelsEnd, false); err == nil {
			t.Errorf("%s: parsed", bad.name)
		}
	}
}

// TestWithSplicesTimesAndMergeCount: a coalesced alert goes out with the
// earliest start, the merged end and merged_events, as Alertmanager reads
// it, with no other change; with nothing to change the bytes are w's own.
func TestWithSplicesTimesAndMergeCount(t *testing.T) {
	for i, a := range hostile() {
		w := Encode(a)
		if got := w.With(w.StartsAt, w.EndsAt, 1); &got[0] != &w.JSON[0] {
			t.Fatalf("alert %d: nothing changed, yet With copied", i)
		}
		starts, ends := time.Date(2025, 6, 7, 8, 9, 10, 11_000_000, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
		for _, merged := range []int{1, 2, 12345} {
			got := decodeAPI(t, w.With(starts, ends, merged))
			want := *decodeAPI(t, w.JSON)
			want.StartsAt, want.EndsAt = got.StartsAt, got.EndsAt
			want.Annotations = maps.Clone(want.Annotations)
			if merged > 1 {
				if want.Annotations == nil {
					want.Annotations = models.LabelSet{}
				}
				want.Annotations[MergedAnnotation] = strconv.Itoa(merged)
			}
			if len(want.Annotations) == 0 {
				want.Annotations, got.Annotations = nil, nil
			}
			if !sameAPI(got, &want) || !time.Time(got.StartsAt).Equal(starts) || !time.Time(got.EndsAt).Equal(ends) {
				t.Fatalf("alert %d, merged %d: got %+v, want %+v", i, merged, got, want)
			}
		}
	}
}

func TestCheck(t *testing.T) {
	ok := &Alert{Labels: model.LabelSet{"alertname": "A"}, StartsAt: time.Now(), EndsAt: time.Now()}
	if err := ok.Check(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		a     Alert
		field string
	}{
		{"no labels", Alert{StartsAt: time.Now(), EndsAt: time.Now()}, "labels"},
		{"year 10000", Alert{Labels: ok.Labels, StartsAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), EndsAt: time.Now()}, "startsAt"},
		{"year -1", Alert{Labels: ok.Labels, StartsAt: time.Now(), EndsAt: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}, "endsAt"},
		{"year 10000 in UTC only", Alert{Labels: ok.Labels, StartsAt: time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("w", -2*3600)), EndsAt: time.Now()}, "startsAt"},
	} {
		err := tc.a.Check()
		ce, isCE := errors.AsType[*CheckError](err)
		if !isCE || ce.Field != tc.field {
			t.Errorf("%s: %v, want a CheckError on %s", tc.name, err, tc.field)
		}
	}
}

// BenchmarkEncode encodes a batch of 256 alerts of the size the shipped
// mapping makes, with go-openapi's marshalling (the ceiling this replaced)
// and Encode.
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
	b.Run("Encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			encs := make([][]byte, len(alerts))
			for i, a := range alerts {
				encs[i] = Encode(a).JSON
			}
			_ = JoinBatch(encs)
		}
	})
}

// TestJoinBatch: a body is the alerts in order, and an empty batch is [].
func TestJoinBatch(t *testing.T) {
	var encs [][]byte
	for i := range 3 {
		encs = append(encs, Encode(&Alert{Labels: model.LabelSet{"n": model.LabelValue(strconv.Itoa(i))}}).JSON)
	}
	var got models.PostableAlerts
	if err := json.Unmarshal(JoinBatch(encs), &got); err != nil || len(got) != 3 {
		t.Fatalf("%v, %d alerts", err, len(got))
	}
	for i, a := range got {
		if a.Labels["n"] != strconv.Itoa(i) {
			t.Fatalf("alert %d is %v: order must be kept", i, a.Labels)
		}
	}
	if b := JoinBatch(nil); string(b) != "[]" {
		t.Fatalf("empty batch %s", b)
	}
}
