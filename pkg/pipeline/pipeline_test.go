package pipeline

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
)

func event(rule, priority string) string {
	return `{"rule":"` + rule + `","priority":"` + priority + `","time":"2026-01-02T12:00:00Z","hostname":"h","output":"o"}`
}

// TestOutcomesInBodyOrder: valid, dropped and invalid events of one body
// each get one outcome, at their index and line, in the order of the body.
func TestOutcomesInBodyOrder(t *testing.T) {
	m, err := mapping.Parse("m.yaml", []byte("min_priority: warning\nlabels:\n  alertname: '{{ .Rule }}'\n"))
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Join([]string{
		event("A", "Critical"),
		`{"rule":"broken"}`,
		event("B", "Debug"),
		event("C", "Warning"),
		`not json`,
	}, "\n")
	b := Evaluate(m, []byte(body), time.Now(), falco.Limits{})
	want := []struct {
		fate Fate
		line int
	}{{Alerted, 1}, {Invalid, 2}, {Dropped, 3}, {Alerted, 4}, {Invalid, 5}}
	if len(b.Outcomes) != len(want) {
		t.Fatalf("%d outcomes, want %d: %+v", len(b.Outcomes), len(want), b.Outcomes)
	}
	for i, w := range want {
		o := b.Outcomes[i]
		if o.Index != i || o.Line != w.line || o.Fate != w.fate {
			t.Errorf("outcome %d: index %d line %d %s, want line %d %s", i, o.Index, o.Line, o.Fate, w.line, w.fate)
		}
		if (o.Fate == Invalid) != (o.Err != nil) || (o.Fate == Alerted) != (o.Alert != nil) {
			t.Errorf("outcome %d (%s): err %v, alert %v", i, o.Fate, o.Err, o.Alert)
		}
	}
	if b.Received != 5 || b.Rejected != 2 || b.Alerts != 2 || len(b.Errors()) != 2 {
		t.Errorf("received %d rejected %d alerts %d errors %d", b.Received, b.Rejected, b.Alerts, len(b.Errors()))
	}
}

type ackSink struct {
	got []Ack
	n   int
}

func (s *ackSink) SendAll(wires []*alert.Wire, ack Ack) (int, error) {
	s.got = append(s.got, ack)
	s.n += len(wires)
	return 1, nil
}

type nopAck struct{}

func (nopAck) Add(int) {}
func (nopAck) Done()   {}

// TestRunAckGivesTheAckToTheSink: RunAck passes its Ack with the alerts,
// Run passes none, and a body without alerts reaches no sink.
func TestRunAckGivesTheAckToTheSink(t *testing.T) {
	m, err := mapping.Parse("m.yaml", []byte("min_priority: warning\nlabels:\n  alertname: '{{ .Rule }}'\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := &ackSink{}
	p := New(Options{Mapping: func() *mapping.Mapping { return m }, Sink: s, Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()})
	p.Run([]byte(event("A", "Critical")), time.Now(), falco.Limits{})
	p.RunAck([]byte(event("B", "Critical")), time.Now(), falco.Limits{}, nopAck{})
	p.RunAck([]byte(event("C", "Debug")), time.Now(), falco.Limits{}, nopAck{})
	if len(s.got) != 2 || s.got[0] != nil || s.got[1] != (nopAck{}) || s.n != 2 {
		t.Fatalf("sink got acks %v for %d alerts, want [nil nopAck] for 2", s.got, s.n)
	}
}
