package jetstream

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/metric"
)

// Metric names, also read back by the status page.
const (
	MetricReceived     = prefix + "messages_received_total"
	MetricAcked        = prefix + "messages_acked_total"
	MetricTermed       = prefix + "messages_termed_total"
	MetricNaked        = prefix + "messages_naked_total"
	MetricRedeliveries = prefix + "redeliveries_total"
	MetricLag          = prefix + "consumer_lag"
	MetricAckPending   = prefix + "consumer_ack_pending"
	MetricHeld         = prefix + "messages_held"
	MetricConnected    = prefix + "connected"
)

const prefix = metric.Namespace + "_source_"

type metrics struct {
	received, acked, termed, naked, redeliveries prometheus.Counter
	lag, ackPending, connected                   prometheus.Gauge
}

// newMetrics registers the source's metrics, labelled with the stream and
// the consumer (one series each: they come from the configuration).
func newMetrics(reg prometheus.Registerer, stream, consumer string, held func() float64) *metrics {
	labels := prometheus.Labels{"stream": stream, "consumer": consumer}
	// The names are whole already: no namespace or subsystem to add.
	f := promauto.With(reg)
	counter := func(name, help string) prometheus.Counter {
		return f.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return f.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels})
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: MetricHeld, Help: "JetStream messages this bridge holds: taken, their alerts not yet safe.", ConstLabels: labels,
	}, held)
	return &metrics{
		received: counter(MetricReceived, "JetStream messages received, redeliveries included."),
		acked:    counter(MetricAcked, "JetStream messages acknowledged: their alerts were spooled, or every Alertmanager queue was done with them, or the mapping dropped the event."),
		termed:   counter(MetricTermed, "JetStream messages terminated: not a valid Falco event, or none whose alert can be sent (counted in events_invalid_total too)."),
		naked: counter(MetricNaked,
			"JetStream messages given back for redelivery: not taken for now (storage_full, storage_error, shutdown in events_refused_total), or still held at shutdown."),
		redeliveries: counter(MetricRedeliveries, "JetStream messages received that had been delivered before, to this bridge or another."),
		lag:          gauge(MetricLag, "Messages of the stream that the consumer has not delivered yet (num_pending), as last read from the server."),
		ackPending:   gauge(MetricAckPending, "Messages delivered and not yet acknowledged, over every bridge of the consumer (num_ack_pending), as last read from the server."),
		connected:    gauge(MetricConnected, "1 while connected to a NATS server."),
	}
}
