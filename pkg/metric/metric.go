// Package metric names falco-am-bridge's metrics: the namespace is spelled
// here alone, and a Factory makes and registers the metrics of one
// subsystem, so that a metric is declared by its name, help and labels.
package metric

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Namespace starts the name of every metric of the bridge.
const Namespace = "falco_am_bridge"

// Name is the full name of the metric name of subsystem ("" for none):
// Name("storage", "bytes") is falco_am_bridge_storage_bytes.
func Name(subsystem, name string) string {
	return prometheus.BuildFQName(Namespace, subsystem, name)
}

// Factory makes the metrics of one subsystem and registers each with the
// Registerer it was made with; with none, it only makes them.
type Factory struct {
	f         promauto.Factory
	subsystem string
}

// With is a Factory of subsystem ("" for none) that registers with reg,
// which may be nil.
func With(reg prometheus.Registerer, subsystem string) Factory {
	return Factory{f: promauto.With(reg), subsystem: subsystem}
}

// Name is the full name of a metric of f's subsystem.
func (f Factory) Name(name string) string { return Name(f.subsystem, name) }

// Counter makes and registers a counter.
func (f Factory) Counter(name, help string) prometheus.Counter {
	return f.f.NewCounter(prometheus.CounterOpts(f.opts(name, help)))
}

// CounterVec makes and registers a counter with labels.
func (f Factory) CounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return f.f.NewCounterVec(prometheus.CounterOpts(f.opts(name, help)), labels)
}

// Gauge makes and registers a gauge.
func (f Factory) Gauge(name, help string) prometheus.Gauge {
	return f.f.NewGauge(prometheus.GaugeOpts(f.opts(name, help)))
}

// GaugeVec makes and registers a gauge with labels.
func (f Factory) GaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return f.f.NewGaugeVec(prometheus.GaugeOpts(f.opts(name, help)), labels)
}

// GaugeFunc makes and registers a gauge whose value fn gives at each scrape.
func (f Factory) GaugeFunc(name, help string, fn func() float64) prometheus.GaugeFunc {
	return f.f.NewGaugeFunc(prometheus.GaugeOpts(f.opts(name, help)), fn)
}

// Histogram makes and registers a histogram.
func (f Factory) Histogram(name, help string, buckets []float64) prometheus.Histogram {
	o := f.opts(name, help)
	return f.f.NewHistogram(prometheus.HistogramOpts{
		Namespace: o.Namespace, Subsystem: o.Subsystem, Name: o.Name, Help: o.Help, ConstLabels: o.ConstLabels, Buckets: buckets,
	})
}

// HistogramVec makes and registers a histogram with labels.
func (f Factory) HistogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	o := f.opts(name, help)
	return f.f.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: o.Namespace, Subsystem: o.Subsystem, Name: o.Name, Help: o.Help, ConstLabels: o.ConstLabels, Buckets: buckets,
	}, labels)
}

// Desc describes a metric of f's subsystem that a custom Collector
// reports.
func (f Factory) Desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(f.Name(name), help, labels, nil)
}

func (f Factory) opts(name, help string) prometheus.Opts {
	return prometheus.Opts{Namespace: Namespace, Subsystem: f.subsystem, Name: name, Help: help}
}
