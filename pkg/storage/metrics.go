package storage

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	records      prometheus.Counter
	bytes        prometheus.Counter
	corrupt      prometheus.Counter
	corruptBytes prometheus.Counter
	dropped      prometheus.Counter
	refused      prometheus.Counter
	migrated     prometheus.Counter
	errors       prometheus.Counter
	segments     prometheus.Gauge
	diskBytes    prometheus.Gauge
	fsync        prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "falco_am_bridge", "storage"
	m := &metrics{
		records:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "records_written_total", Help: "Alerts written to the durable queue."}),
		bytes:        prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "written_bytes_total", Help: "Bytes written to the durable queue."}),
		corrupt:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "corrupt_records_total", Help: "Corrupt or torn stretches of the durable queue skipped; reading goes on at the next valid record."}),
		corruptBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "corrupt_bytes_total", Help: "Bytes of the corrupt or torn stretches skipped."}),
		dropped:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "dropped_alerts_total", Help: "Alerts dropped with the oldest segment when the durable queue was full (storage.when_full=drop-oldest) before every Alertmanager had read them."}),
		refused:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "full_refusals_total", Help: "Writes refused because the durable queue was full (storage.when_full=refuse)."}),
		migrated:     prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "migrated_records_total", Help: "Records of an earlier release's segment format rewritten at start."}),
		errors:       prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "errors_total", Help: "Failed writes and syncs of the durable queue."}),
		segments:     prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "segments", Help: "Segment files on disk."}),
		diskBytes:    prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "bytes", Help: "Bytes of every segment file together; storage.max_bytes caps it."}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "fsync_duration_seconds", Help: "Duration of syncs of the durable queue.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.bytes, m.corrupt, m.corruptBytes, m.dropped, m.refused, m.migrated, m.errors, m.segments, m.diskBytes, m.fsync)
	}
	return m
}
