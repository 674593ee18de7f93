package storage

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/metric"
)

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
	f := metric.With(reg, "storage")
	return &metrics{
		records:      f.Counter("records_written_total", "Alerts written to the durable queue."),
		bytes:        f.Counter("written_bytes_total", "Bytes written to the durable queue."),
		corrupt:      f.Counter("corrupt_records_total", "Corrupt or torn stretches of the durable queue skipped; reading goes on at the next valid record."),
		corruptBytes: f.Counter("corrupt_bytes_total", "Bytes of the corrupt or torn stretches skipped."),
		dropped:      f.Counter("dropped_alerts_total", "Alerts dropped with the oldest segment when the durable queue was full (storage.when_full=drop-oldest) before every Alertmanager had read them."),
		refused:      f.Counter("full_refusals_total", "Writes refused because the durable queue was full (storage.when_full=refuse)."),
		migrated:     f.Counter("migrated_records_total", "Records of an earlier release's segment format rewritten at start."),
		errors:       f.Counter("errors_total", "Failed writes and syncs of the durable queue."),
		segments:     f.Gauge("segments", "Segment files on disk."),
		diskBytes:    f.Gauge("bytes", "Bytes of every segment file together; storage.max_bytes caps it."),
		fsync: f.Histogram("fsync_duration_seconds", "Duration of syncs of the durable queue.",
			[]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}),
	}
}
