package status

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/pipeline"
)

func decode(t *testing.T, body string) falco.Event {
	t.Helper()
	evs, errs := falco.Decode([]byte(body))
	if len(errs) > 0 || len(evs) != 1 {
		t.Fatalf("decode %s: %v", body, errs)
	}
	return evs[0]
}

func event(rule, cmdline string) string {
	return fmt.Sprintf(`{"rule":%q,"priority":"Warning","time":"2026-01-02T00:00:00Z","output":"o","output_fields":{"proc.cmdline":%q,"evt.time":1767312000000000001}}`, rule, cmdline)
}

func TestRecentKeepsTheLastNewestFirst(t *testing.T) {
	r := NewRecent(3, 0)
	now := time.Unix(1767312000, 0)
	for i := range 5 {
		ev := decode(t, event(fmt.Sprintf("rule %d", i), "sh"))
		mapped(r, &ev, now, mapping.Result{Alert: &alert.Alert{Labels: model.LabelSet{"alertname": "A"}}})
	}
	got := r.List()
	if len(got) != 3 || got[0].Rule != "rule 4" || got[2].Rule != "rule 2" || got[0].ID != 5 {
		t.Fatalf("got %+v", got)
	}
	if got[0].Outcome != OutcomeAlert || got[0].Alert.Labels["alertname"] != "A" {
		t.Fatalf("entry %+v", got[0])
	}
}

func TestRecentIsBoundedByBytes(t *testing.T) {
	r := NewRecent(100, 64<<10)
	now := time.Now()
	big := strings.Repeat("x", 10<<10)
	for i := range 20 {
		ev := decode(t, event(fmt.Sprintf("rule %d", i), big))
		mapped(r, &ev, now, mapping.Result{Dropped: mapping.DropPriority})
	}
	got := r.List()
	if r.Bytes() > 64<<10 || len(got) >= 20 || len(got) < 4 {
		t.Fatalf("%d entries in %d bytes", len(got), r.Bytes())
	}
	if got[0].Rule != "rule 19" || got[0].Outcome != OutcomeDropped || got[0].DropReason != mapping.DropPriority {
		t.Fatalf("newest %+v", got[0])
	}
}

func TestRecentCapsOneEvent(t *testing.T) {
	r := NewRecent(10, 0)
	ev := decode(t, event("big", strings.Repeat("é", MaxRawBytes)))
	mapped(r, &ev, time.Now(), mapping.Result{Dropped: mapping.DropOverride, Errors: []error{errors.New("labels.x: boom")}})
	e := r.List()[0]
	if !e.EventTruncated || len(e.Event) > MaxRawBytes || !strings.HasSuffix(e.Event, "…[truncated]") {
		t.Fatalf("raw of %d bytes, truncated %v", len(e.Event), e.EventTruncated)
	}
	if len(e.Errors) != 1 || e.Errors[0] != "labels.x: boom" {
		t.Fatalf("errors %v", e.Errors)
	}
}

func TestRecentEventIsFalcoJSON(t *testing.T) {
	r := NewRecent(10, 0)
	ev := decode(t, event("R", "<script>x</script>"))
	mapped(r, &ev, time.Now(), mapping.Result{Dropped: mapping.DropOverride})
	raw := r.List()[0].Event
	// Decodes back to the same event, big integers and markup intact.
	back := decode(t, raw)
	if back.Rule != "R" || back.Fields.Get("proc.cmdline") != "<script>x</script>" || string(back.Fields["evt.time"].JSON()) != "1767312000000000001" {
		t.Fatalf("raw %s decodes to %+v", raw, back)
	}
}

func TestRecentRejected(t *testing.T) {
	r := NewRecent(100, 0)
	body := []byte(event("ok", "sh") + "\n" + `{"rule":"bad"}` + "\n")
	_, errs := falco.Decode(body)
	rejected(r, body, errs, time.Now())
	got := r.List()
	if len(got) != 1 || got[0].Outcome != OutcomeRejected || got[0].Event != `{"rule":"bad"}` || !strings.Contains(got[0].Errors[0], "line 2") {
		t.Fatalf("got %+v", got)
	}
	// One body cannot flood the ring.
	var many []*falco.Error
	for i := range 50 {
		many = append(many, &falco.Error{Index: i, Line: 1, Expected: "x"})
	}
	rejected(r, []byte("{}"), many, time.Now())
	if n := len(r.List()); n != 1+maxRejectedPerBody {
		t.Fatalf("%d entries", n)
	}
}

func TestNilRecentRecordsNothing(t *testing.T) {
	var r *Recent
	ev := decode(t, event("R", "sh"))
	mapped(r, &ev, time.Now(), mapping.Result{})
	rejected(r, nil, []*falco.Error{{}}, time.Now())
	if r.List() != nil || r.Bytes() != 0 {
		t.Fatal("nil ring holds something")
	}
}

// mapped records one valid event and what mapping it gave, as the
// pipeline does.
func mapped(r *Recent, ev *falco.Event, received time.Time, res mapping.Result) {
	o := pipeline.Outcome{Fate: pipeline.Alerted, Index: ev.Index, Line: ev.Line, Event: ev, Alert: res.Alert, DropReason: res.Dropped, MapErrors: res.Errors}
	if res.Alert == nil {
		o.Fate = pipeline.Dropped
	}
	r.Record(nil, &pipeline.Body{Outcomes: []pipeline.Outcome{o}}, received)
}

// rejected records the invalid events of body, as the pipeline does.
func rejected(r *Recent, body []byte, errs []*falco.Error, received time.Time) {
	b := &pipeline.Body{}
	for _, e := range errs {
		b.Outcomes = append(b.Outcomes, pipeline.Outcome{Fate: pipeline.Invalid, Index: e.Index, Line: e.Line, Err: e})
	}
	r.Record(body, b, received)
}
