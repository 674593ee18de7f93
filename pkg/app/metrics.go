package app

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/version"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/ratelog"
)

const namespace = "falco_am_bridge"

type metrics struct {
	accepted      prometheus.Counter
	dropped       *prometheus.CounterVec
	mappingErrors prometheus.Counter
	// refused counts valid events answered 503: the durable queue could
	// not take them.
	refused       *prometheus.CounterVec
	reloadOK      prometheus.Gauge
	reloadTime    prometheus.Gauge
	mappingErrLog *ratelog.Sampler
	noTargetLog   *ratelog.Sampler
	unsendableLog *ratelog.Sampler
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "events_accepted_total",
			Help: "Valid Falco events taken for mapping.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "events_dropped_total",
			Help: "Valid events that made no alert because a filter of the mapping dropped them: min_priority or override.",
		}, []string{"reason"}),
		mappingErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "mapping_errors_total",
			Help: "Label or annotation templates that failed on an event; the alert was sent without that value.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "events_refused_total",
			Help: "Valid events answered 503 with Retry-After, not taken, by reason: storage_full (storage.when_full=refuse), storage_error (the disk refused the write), shutdown.",
		}, []string{"reason"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "config_last_reload_successful",
			Help: "Whether the last configuration reload succeeded.",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully.",
		}),
		mappingErrLog: ratelog.New(10 * time.Second),
		noTargetLog:   ratelog.New(10 * time.Second),
		unsendableLog: ratelog.New(10 * time.Second),
	}
	for _, r := range []string{mapping.DropPriority, mapping.DropOverride} {
		m.dropped.WithLabelValues(r)
	}
	for _, r := range []string{"storage_full", "storage_error", "shutdown"} {
		m.refused.WithLabelValues(r)
	}
	m.reloadOK.Set(1)
	m.reloadTime.SetToCurrentTime()
	reg.MustRegister(m.accepted, m.dropped, m.mappingErrors, m.refused, m.reloadOK, m.reloadTime)
	return m
}

func versionCollector() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help: "A metric with a constant '1' value labeled by version, revision, branch and goversion.",
		ConstLabels: prometheus.Labels{
			"version": version.Version, "revision": version.GetRevision(),
			"branch": version.Branch, "goversion": version.GoVersion,
		},
	}, func() float64 { return 1 })
}
