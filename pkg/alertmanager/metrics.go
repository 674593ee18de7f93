package alertmanager

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/metric"
)

const subsystem = "alertmanager"

// Reasons an alert leaves a queue without being delivered.
const (
	DropQueueFull     = "queue_full"
	DropExpired       = "expired"
	DropRejected      = "rejected"
	DropShutdown      = "shutdown"
	DropTargetRemoved = "target_removed"
	// The bridge is set up wrong for this Alertmanager: it redirects
	// with a method change (301, 302, 303), or answers 401, 403 or 404.
	DropRedirect     = "redirect"
	DropUnauthorized = "unauthorized"
	DropForbidden    = "forbidden"
	DropNotFound     = "not_found"
	// The durable spool was full and dropped its oldest segment before
	// this Alertmanager had read the alert (storage.when_full=drop-oldest).
	DropStorageFull = "storage_full"
)

var dropReasons = []string{DropQueueFull, DropExpired, DropRejected, DropShutdown, DropTargetRemoved,
	DropRedirect, DropUnauthorized, DropForbidden, DropNotFound, DropStorageFull}

type metrics struct {
	sent          *prometheus.CounterVec
	dropped       *prometheus.CounterVec
	merged        *prometheus.CounterVec
	queueCapacity *prometheus.GaugeVec
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	targets       prometheus.Gauge
	// targetRemoved counts the alerts dropped as target_removed without
	// the alertmanager label, which goes with the removed Alertmanager.
	targetRemoved prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := metric.With(reg, subsystem)
	return &metrics{
		sent: f.CounterVec("alerts_sent_total", "Alerts delivered to an Alertmanager (accepted with a 2xx).", "alertmanager"),
		dropped: f.CounterVec("alerts_dropped_total",
			"Alerts that left a queue undelivered, by reason: queue_full, expired (endsAt passed), rejected (4xx), shutdown, target_removed, storage_full (dropped with the oldest segment of a full durable queue), and redirect, unauthorized, forbidden, not_found (the bridge is set up wrong for that Alertmanager).",
			"alertmanager", "reason"),
		merged:        f.CounterVec("alerts_merged_total", "Alerts coalesced into a waiting alert with the same labels.", "alertmanager"),
		queueCapacity: f.GaugeVec("queue_capacity", "Capacity of the queue of an Alertmanager.", "alertmanager"),
		requests: f.CounterVec("requests_total",
			"POSTs to an Alertmanager, by outcome: success, retryable_error, rejected, config_error (a redirect, 401, 403, 404), cancelled.",
			"alertmanager", "outcome"),
		latency: f.HistogramVec("request_duration_seconds", "Duration of POSTs to an Alertmanager.",
			[]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}, "alertmanager"),
		targets: f.Gauge("targets", "Alertmanagers alerts are sent to."),
		targetRemoved: f.Counter("removed_target_dropped_alerts_total",
			"Alerts dropped because their Alertmanager was removed and no new one took its queue (target_removed); the removed Alertmanager's own series are deleted."),
	}
}

// addTarget presets every series of a new Alertmanager to zero.
func (m *metrics) addTarget(am string, capacity int) {
	m.sent.WithLabelValues(am)
	m.merged.WithLabelValues(am)
	for _, r := range dropReasons {
		m.dropped.WithLabelValues(am, r)
	}
	for _, o := range []outcome{outcomeOK, outcomeRetry, outcomeRejected, outcomeConfig, outcomeCancelled} {
		m.requests.WithLabelValues(am, o.String())
	}
	m.queueCapacity.WithLabelValues(am).Set(float64(capacity))
	m.latency.WithLabelValues(am)
}

// addPending presets the series of the queue that holds alerts while no
// Alertmanager is known; it sends nothing, so it has no request series.
func (m *metrics) addPending(name string, capacity int) {
	for _, r := range []string{DropQueueFull, DropShutdown} {
		m.dropped.WithLabelValues(name, r)
	}
	m.queueCapacity.WithLabelValues(name).Set(float64(capacity))
}

// removeTarget deletes every series of an Alertmanager that is gone, so
// that /metrics does not grow with the addresses a StatefulSet's pods ever
// had. What became of its last alerts is in removed_target_dropped_alerts_total
// and the log.
func (m *metrics) removeTarget(am string) {
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.sent, m.dropped, m.merged, m.queueCapacity, m.requests, m.latency} {
		v.DeletePartialMatch(prometheus.Labels{"alertmanager": am})
	}
}

// queueLengths reports the length of every queue when scraped, so the
// figure is current even while a sender sleeps between retries.
type queueLengths struct {
	m       *Manager
	desc    *prometheus.Desc
	bytes   *prometheus.Desc
	backlog *prometheus.Desc
}

func newQueueLengths(m *Manager) *queueLengths {
	f := metric.With(nil, subsystem)
	return &queueLengths{m: m,
		desc: f.Desc("queue_length",
			"Alerts waiting in the queue of an Alertmanager, those being sent included; alertmanager=\"pending\" holds alerts while no Alertmanager is known.",
			"alertmanager"),
		bytes: f.Desc("queue_bytes",
			"Approximate bytes of the alerts in the queue of an Alertmanager; alertmanager.queue_max_bytes caps it.", "alertmanager"),
		backlog: f.Desc("spool_backlog",
			"With a durable queue (storage.path): alerts in it that an Alertmanager has not read into its queue yet; storage.max_bytes bounds them.",
			"alertmanager"),
	}
}

func (c *queueLengths) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	ch <- c.bytes
	ch <- c.backlog
}

func (c *queueLengths) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.RLock()
	defer c.m.mu.RUnlock()
	// The backlog is read before the queue: records move from the one to
	// the other, so that, read in this order, a record being moved is
	// counted twice, never missed, and the two never add up to 0 while
	// anything is left to send.
	for name, s := range c.m.senders {
		if s.cur != nil {
			ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(s.cur.Backlog()), name)
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s.q.len()), name)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.q.size()), name)
	}
	if c.m.pendingCur != nil {
		ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(c.m.pendingCur.Backlog()), PendingQueue)
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(c.m.pending.q.len()), PendingQueue)
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(c.m.pending.q.size()), PendingQueue)
}
