package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/metric"
)

type metrics struct {
	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := metric.With(reg, "")
	m := &metrics{
		reloadOK:   f.Gauge("config_last_reload_successful", "Whether the last configuration reload succeeded."),
		reloadTime: f.Gauge("config_last_reload_success_timestamp_seconds", "When the configuration was last loaded successfully."),
	}
	m.reloadOK.Set(1)
	m.reloadTime.SetToCurrentTime()
	return m
}
