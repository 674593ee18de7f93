package pipeline

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/metric"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/ratelog"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/storage"
)

// Sink takes the alerts of a body: every Alertmanager's queue, through the
// durable spool when there is one. It returns the number of queues they
// went to; an error means nothing was taken. ack, when not nil, is held
// as Ack says.
type Sink interface {
	SendAll(wires []*alert.Wire, ack Ack) (int, error)
}

// Ack is told when the alerts of a run are done with, for a sender that
// acknowledges its events only then (a JetStream source). Without a
// durable spool the sink calls Add(n) before it puts n alerts in a queue,
// and Done once for each when that queue is finished with it: delivered,
// rejected, expired or dropped. With a spool it holds no Ack: the alerts
// are safe once the run returns without Body.Err.
type Ack interface {
	Add(n int)
	Done()
}

// Recorder keeps what became of each event for the status page.
type Recorder interface {
	Record(body []byte, b *Body, received time.Time)
}

// Pipeline runs the bodies the bridge receives.
type Pipeline struct {
	o Options
	m *metrics
}

// Options are what a Pipeline needs.
type Options struct {
	// Mapping returns the running mapping (it changes on reload).
	Mapping func() *mapping.Mapping
	Sink    Sink
	// Seen, when set, is told the hostname of every valid event, mapped
	// or not: it still shows its sensor is alive.
	Seen func(host string, received time.Time)
	// Recorder, when set, is given every outcome.
	Recorder Recorder
	Logger   *slog.Logger
	Registry prometheus.Registerer
}

// New returns a Pipeline and registers its metrics.
func New(o Options) *Pipeline {
	return &Pipeline{o: o, m: newMetrics(o.Registry)}
}

// Run evaluates body, then stores and queues its alerts. When the sink
// cannot take them, Body.Err says why and nothing is taken.
func (p *Pipeline) Run(body []byte, received time.Time, lim falco.Limits) *Body {
	return p.RunAck(body, received, lim, nil)
}

// RunAck is Run that gives ack to the sink with the alerts (see Ack).
func (p *Pipeline) RunAck(body []byte, received time.Time, lim falco.Limits, ack Ack) *Body {
	b := Evaluate(p.o.Mapping(), body, received, lim)
	if b.TooMany {
		return b
	}
	p.m.received.Add(float64(b.Received))
	wires := make([]*alert.Wire, 0, b.Alerts)
	for i := range b.Outcomes {
		o := &b.Outcomes[i]
		if o.Event != nil && p.o.Seen != nil {
			p.o.Seen(o.Event.Hostname, received)
		}
		if len(o.MapErrors) > 0 {
			if ok, n := p.m.mappingErrLog.Allow(received); ok {
				p.o.Logger.Warn("mapping template failed; the alert is sent without that value", "rule", o.Event.Rule, "err", o.MapErrors[0], "suppressed_since_last", n)
			}
		}
		switch o.Fate {
		case Alerted:
			wires = append(wires, alert.Encode(o.Alert))
		case Dropped:
			p.m.dropped.WithLabelValues(o.DropReason).Inc()
			p.o.Logger.Debug("event dropped by the mapping", "rule", o.Event.Rule, "priority", o.Event.Priority, "reason", o.DropReason)
		}
	}
	p.m.mappingErrors.Add(float64(b.MappingErrors))
	p.m.invalid.Add(float64(b.Rejected))
	if len(wires) > 0 {
		n, err := p.o.Sink.SendAll(wires, ack)
		if err != nil {
			b.Err = unavailable(err)
			p.m.refused.WithLabelValues(b.Err.Reason).Add(float64(b.Received - b.Rejected))
		} else {
			b.Queues = n
			if n == 0 {
				if ok, sup := p.m.noTargetLog.Allow(received); ok {
					p.o.Logger.Warn("no Alertmanager known yet; alerts are held until one is", "alerts", len(wires), "suppressed_since_last", sup)
				}
			}
		}
	}
	if b.Err == nil {
		p.m.accepted.Add(float64(b.Received - b.Rejected))
	}
	if p.o.Recorder != nil {
		p.o.Recorder.Record(body, b, received)
	}
	return b
}

// unavailable says why the sink could not take a body.
func unavailable(err error) *Unavailable {
	reason := ReasonShutdown
	switch {
	case errors.Is(err, storage.ErrFull):
		reason = ReasonStorageFull
	case errors.Is(err, storage.ErrWrite):
		reason = ReasonStorageError
	}
	return &Unavailable{Reason: reason, Err: err, RetryAfter: 5 * time.Second}
}

// Reasons a body is refused for now (the events_refused_total label).
const (
	ReasonStorageFull  = "storage_full"
	ReasonStorageError = "storage_error"
	ReasonShutdown     = "shutdown"
)

type metrics struct {
	received, invalid, accepted, mappingErrors prometheus.Counter
	dropped, refused                           *prometheus.CounterVec
	mappingErrLog, noTargetLog                 *ratelog.Sampler
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := metric.With(reg, "")
	m := &metrics{
		received: f.Counter("events_received_total", "Falco events received, valid or not."),
		invalid:  f.Counter("events_invalid_total", "Falco events rejected as invalid, or whose alert cannot be sent (answered with 400; from JetStream, terminated)."),
		accepted: f.Counter("events_accepted_total", "Valid Falco events taken."),
		mappingErrors: f.Counter("mapping_errors_total",
			"Label or annotation templates that failed on an event; the alert was sent without that value."),
		dropped: f.CounterVec("events_dropped_total",
			"Valid events that made no alert because a filter of the mapping dropped them: min_priority or override.", "reason"),
		refused: f.CounterVec("events_refused_total",
			"Valid events not taken, answered 503 with Retry-After (from JetStream, given back with that delay), by reason: storage_full (storage.when_full=refuse), storage_error (the disk refused the write), shutdown.",
			"reason"),
		mappingErrLog: ratelog.New(10 * time.Second),
		noTargetLog:   ratelog.New(10 * time.Second),
	}
	for _, r := range []string{mapping.DropPriority, mapping.DropOverride} {
		m.dropped.WithLabelValues(r)
	}
	for _, r := range []string{ReasonStorageFull, ReasonStorageError, ReasonShutdown} {
		m.refused.WithLabelValues(r)
	}
	return m
}
