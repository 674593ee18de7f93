package app

import (
	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "falco_am_bridge"

type metrics struct {
	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "config_last_reload_successful",
			Help: "Whether the last configuration reload succeeded.",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully.",
		}),
	}
	m.reloadOK.Set(1)
	m.reloadTime.SetToCurrentTime()
	reg.MustRegister(m.reloadOK, m.reloadTime)
	return m
}
