package jetstream

import "github.com/prometheus/client_golang/prometheus"

// Metric names, also read back by the status page.
const (
	MetricReceived     = "falco_am_bridge_source_messages_received_total"
	MetricAcked        = "falco_am_bridge_source_messages_acked_total"
	MetricTermed       = "falco_am_bridge_source_messages_termed_total"
	MetricNaked        = "falco_am_bridge_source_messages_naked_total"
	MetricRedeliveries = "falco_am_bridge_source_redeliveries_total"
	MetricLag          = "falco_am_bridge_source_consumer_lag"
	MetricAckPending   = "falco_am_bridge_source_consumer_ack_pending"
	MetricHeld         = "falco_am_bridge_source_messages_held"
	MetricConnected    = "falco_am_bridge_source_connected"
)

type metrics struct {
	received, acked, termed, naked, redeliveries prometheus.Counter
	lag, ackPending, connected                   prometheus.Gauge
}

// newMetrics registers the source's metrics, labelled with the stream and
// the consumer (one series each: they come from the configuration).
func newMetrics(reg prometheus.Registerer, stream, consumer string, held func() float64) *metrics {
	labels := prometheus.Labels{"stream": stream, "consumer": consumer}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels})
	}
	m := &metrics{
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
	if reg != nil {
		reg.MustRegister(m.received, m.acked, m.termed, m.naked, m.redeliveries, m.lag, m.ackPending, m.connected,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: MetricHeld, Help: "JetStream messages this bridge holds: taken, their alerts not yet safe.", ConstLabels: labels,
			}, held))
	}
	return m
}
