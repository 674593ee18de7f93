package status

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alertmanager"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/metric"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/source/jetstream"
)

// Status is what GET /api/v1/status answers and the status page shows.
type Status struct {
	Version       string    `json:"version"`
	Revision      string    `json:"revision,omitempty"`
	Started       time.Time `json:"started"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Runtime       Runtime   `json:"runtime"`
	Mapping       Mapping   `json:"mapping"`
	Alertmanagers []Target  `json:"alertmanagers"`
	Sources       []Source  `json:"sources"`
	Events        Counters  `json:"events"`
	Recent        RecentSet `json:"recent"`
}

// Runtime is the Go runtime's settings in effect.
type Runtime struct {
	GoVersion  string `json:"go_version"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	// MemoryLimitBytes is the Go soft memory limit; 0 when there is none.
	MemoryLimitBytes int64 `json:"memory_limit_bytes"`
	// MemoryLimitFrom says where it comes from: runtime.memory_limit,
	// GOMEMLIMIT, cgroup, alertmanager.queue_max_bytes or none.
	MemoryLimitFrom string `json:"memory_limit_from,omitempty"`
}

// Mapping is the mapping in use.
type Mapping struct {
	File       string    `json:"file"`
	Loaded     time.Time `json:"loaded"`
	ReloadOK   bool      `json:"last_reload_successful"`
	ReloadErr  string    `json:"last_reload_error,omitempty"`
	ReloadedAt time.Time `json:"last_reload_attempt,omitzero"`
}

// Target is one Alertmanager queue.
type Target struct {
	URL           string           `json:"url"`
	QueueLength   int              `json:"queue_length"`
	QueueCapacity int              `json:"queue_capacity"`
	LastSuccess   time.Time        `json:"last_success,omitzero"`
	LastError     string           `json:"last_error,omitempty"`
	LastErrorTime time.Time        `json:"last_error_time,omitzero"`
	Requests      map[string]int64 `json:"requests"` // by outcome
	AlertsSent    int64            `json:"alerts_sent"`
	AlertsDropped map[string]int64 `json:"alerts_dropped"` // by reason
	AlertsMerged  int64            `json:"alerts_merged"`
}

// Source is where events come from besides HTTP ingest: a JetStream
// consumer.
type Source struct {
	Kind      string `json:"kind"` // jetstream
	Stream    string `json:"stream"`
	Consumer  string `json:"consumer"`
	Connected bool   `json:"connected"`
	// Lag is the consumer's num_pending: events in the stream no bridge
	// has taken yet.
	Lag int64 `json:"lag"`
	// AckPending is taken and not yet acknowledged, by every bridge of
	// the consumer; Held by this one.
	AckPending   int64 `json:"ack_pending"`
	Held         int64 `json:"held"`
	Received     int64 `json:"received"`
	Acked        int64 `json:"acked"`
	Termed       int64 `json:"termed"`
	Naked        int64 `json:"naked"`
	Redeliveries int64 `json:"redeliveries"`
}

// Counters are the event counters, as /metrics has them.
type Counters struct {
	Received      int64            `json:"received"`
	Accepted      int64            `json:"accepted"`
	Rejected      int64            `json:"rejected"`
	Dropped       map[string]int64 `json:"dropped"` // by reason
	MappingErrors int64            `json:"mapping_errors"`
}

// RecentSet is the last events received, newest first.
type RecentSet struct {
	MaxEvents int     `json:"max_events"`
	MaxBytes  int     `json:"max_bytes"`
	Bytes     int     `json:"bytes"`
	Events    []Entry `json:"events"`
}

// Metric names read back from the registry.
const (
	metricReceived      = metric.Namespace + "_events_received_total"
	metricAccepted      = metric.Namespace + "_events_accepted_total"
	metricInvalid       = metric.Namespace + "_events_invalid_total"
	metricDropped       = metric.Namespace + "_events_dropped_total"
	metricMappingErrors = metric.Namespace + "_mapping_errors_total"
	metricQueueLength   = metric.Namespace + "_alertmanager_queue_length"
	metricQueueCap      = metric.Namespace + "_alertmanager_queue_capacity"
	metricRequests      = metric.Namespace + "_alertmanager_requests_total"
	metricSent          = metric.Namespace + "_alertmanager_alerts_sent_total"
	metricAMDropped     = metric.Namespace + "_alertmanager_alerts_dropped_total"
	metricMerged        = metric.Namespace + "_alertmanager_alerts_merged_total"
)

// FromMetrics fills the counters and the Alertmanager targets from the
// bridge's own metrics, so the page and /metrics never disagree. The
// targets are those with a queue capacity series: the current ones and
// the queue of alerts held while none is known. results adds the last
// success and error of each.
func (s *Status) FromMetrics(g prometheus.Gatherer, results map[string]alertmanager.TargetResult) error {
	mfs, err := g.Gather()
	if err != nil {
		return err
	}
	byName := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	each := func(name string, fn func(labels map[string]string, v float64)) {
		mf := byName[name]
		if mf == nil {
			return
		}
		for _, m := range mf.GetMetric() {
			labels := make(map[string]string, len(m.GetLabel()))
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			var v float64
			switch {
			case m.Counter != nil:
				v = m.GetCounter().GetValue()
			case m.Gauge != nil:
				v = m.GetGauge().GetValue()
			case m.Untyped != nil:
				v = m.GetUntyped().GetValue()
			}
			fn(labels, v)
		}
	}
	sum := func(name string) (n int64) {
		each(name, func(_ map[string]string, v float64) { n += int64(v) })
		return n
	}
	s.Events = Counters{
		Received: sum(metricReceived), Accepted: sum(metricAccepted), Rejected: sum(metricInvalid),
		MappingErrors: sum(metricMappingErrors), Dropped: map[string]int64{},
	}
	each(metricDropped, func(l map[string]string, v float64) { s.Events.Dropped[l["reason"]] += int64(v) })

	targets := map[string]*Target{}
	each(metricQueueCap, func(l map[string]string, v float64) {
		targets[l["alertmanager"]] = &Target{
			URL: l["alertmanager"], QueueCapacity: int(v),
			Requests: map[string]int64{}, AlertsDropped: map[string]int64{},
		}
	})
	// eachTarget is each for the series of the targets found above.
	eachTarget := func(name string, fn func(t *Target, l map[string]string, v float64)) {
		each(name, func(l map[string]string, v float64) {
			if t := targets[l["alertmanager"]]; t != nil {
				fn(t, l, v)
			}
		})
	}
	eachTarget(metricQueueLength, func(t *Target, _ map[string]string, v float64) { t.QueueLength = int(v) })
	eachTarget(metricRequests, func(t *Target, l map[string]string, v float64) { t.Requests[l["outcome"]] += int64(v) })
	eachTarget(metricSent, func(t *Target, _ map[string]string, v float64) { t.AlertsSent += int64(v) })
	eachTarget(metricAMDropped, func(t *Target, l map[string]string, v float64) { t.AlertsDropped[l["reason"]] += int64(v) })
	eachTarget(metricMerged, func(t *Target, _ map[string]string, v float64) { t.AlertsMerged += int64(v) })
	s.Sources = sourcesFrom(each)

	s.Alertmanagers = make([]Target, 0, len(targets))
	for name, t := range targets {
		if r, ok := results[name]; ok {
			t.LastSuccess, t.LastError, t.LastErrorTime = r.LastSuccess, r.LastError, r.LastErrorTime
		}
		s.Alertmanagers = append(s.Alertmanagers, *t)
	}
	slices.SortFunc(s.Alertmanagers, func(a, b Target) int {
		// The pending queue last, the others by URL.
		if (a.URL == pendingQueue) != (b.URL == pendingQueue) {
			if a.URL == pendingQueue {
				return 1
			}
			return -1
		}
		return strings.Compare(a.URL, b.URL)
	})
	return nil
}

const pendingQueue = alertmanager.PendingQueue

// sourcesFrom reads the JetStream sources from their metrics, one per
// stream and consumer.
func sourcesFrom(each func(name string, fn func(labels map[string]string, v float64))) []Source {
	byKey := map[string]*Source{}
	get := func(l map[string]string) *Source {
		k := l["stream"] + "\x00" + l["consumer"]
		src := byKey[k]
		if src == nil {
			src = &Source{Kind: "jetstream", Stream: l["stream"], Consumer: l["consumer"]}
			byKey[k] = src
		}
		return src
	}
	for name, field := range map[string]func(*Source) *int64{
		jetstream.MetricReceived: func(s *Source) *int64 { return &s.Received },
		jetstream.MetricAcked:    func(s *Source) *int64 { return &s.Acked },
		jetstream.MetricTermed:   func(s *Source) *int64 { return &s.Termed },
		jetstream.MetricNaked:    func(s *Source) *int64 { return &s.Naked },
		jetstream.MetricRedeliveries: func(s *Source) *int64 {
			return &s.Redeliveries
		},
		jetstream.MetricLag:        func(s *Source) *int64 { return &s.Lag },
		jetstream.MetricAckPending: func(s *Source) *int64 { return &s.AckPending },
		jetstream.MetricHeld:       func(s *Source) *int64 { return &s.Held },
	} {
		each(name, func(l map[string]string, v float64) { *field(get(l)) = int64(v) })
	}
	each(jetstream.MetricConnected, func(l map[string]string, v float64) { get(l).Connected = v == 1 })
	out := make([]Source, 0, len(byKey))
	for _, src := range byKey {
		out = append(out, *src)
	}
	slices.SortFunc(out, func(a, b Source) int {
		return cmp.Or(strings.Compare(a.Stream, b.Stream), strings.Compare(a.Consumer, b.Consumer))
	})
	return out
}
