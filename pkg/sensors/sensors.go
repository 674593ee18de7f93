// Package sensors keeps track of the Falco sensors that send events: when
// each was last heard from, as a metric per host, and optionally an alert,
// FalcoSensorSilent, for a sensor that was heard from and then went quiet.
// A crashed, evicted or cut-off Falco sends nothing, and nothing else would
// notice.
package sensors

import (
	"container/list"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/defaults"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/metric"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/ratelog"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/text"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/tick"
)

// AlertName is the alertname of the alert about a silent sensor.
const AlertName = "FalcoSensorSilent"

// GroupAlertName is the alertname of the one alert sent instead of one per
// sensor when more than MaxSilentAlerts sensors are silent at once.
const GroupAlertName = "FalcoSensorsSilent"

// MaxSilentAlerts is how many sensors at most get a FalcoSensorSilent of
// their own. A sender can make up hostnames, and a network cut can silence
// a whole fleet: past this many silent sensors one FalcoSensorsSilent
// counting them says more to a person than thousands of alerts, and costs
// Alertmanager one alert.
const MaxSilentAlerts = 10

// groupHostsShown is how many of the silent hostnames the grouped alert
// names, those silent longest first.
const groupHostsShown = 10

// DefaultMaxTracked is how many sensors are tracked unless told otherwise.
const DefaultMaxTracked = 10000

const (
	// maxHostnameBytes caps a tracked name (DNS names have at most 253
	// bytes), so a hostile sender cannot make the metric page huge.
	maxHostnameBytes = 253
	// resendInterval is how often the alert of a sensor that stays quiet
	// is sent again; its endsAt lies endsAtFactor intervals ahead, as
	// Prometheus does for its own alerts, so an alert the bridge stops
	// sending (it was restarted, or forgot the sensor) resolves by itself.
	resendInterval = time.Minute
	endsAtFactor   = 4
)

// Sender queues alerts for every Alertmanager; *alertmanager.Manager is one.
type Sender interface {
	SendAlerts(alerts []*alert.Alert) (int, error)
}

// Options configure a Tracker.
type Options struct {
	// MaxTracked bounds the number of sensors tracked; when a new one
	// comes and the limit is reached, the one heard from longest ago is
	// forgotten (and counted).
	MaxTracked int
	// SilentAfter, when above 0, turns on the FalcoSensorSilent alert for
	// a sensor quiet for longer than that.
	SilentAfter time.Duration
	// StaticLabels returns labels added to every FalcoSensorSilent alert
	// (the mapping's static_labels); nil adds none.
	StaticLabels func() model.LabelSet
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Tracker records when each sensor was last heard from. Seen is safe for
// concurrent use and cheap: a map lookup under a mutex.
type Tracker struct {
	opts   Options
	sender Sender
	logger *slog.Logger

	mu       sync.Mutex
	byHost   map[string]*list.Element // of *sensor
	lru      *list.List               // front: heard from most recently
	spoke    []*sensor                // alerted sensors heard from again, to resolve
	evicted  prometheus.Counter
	wake     chan struct{}
	evictLog *ratelog.Sampler

	silentNow prometheus.Gauge

	// groupStart is when the FalcoSensorsSilent alert started, zero when
	// it is not firing; groupSent is when it was last sent.
	groupStart, groupSent time.Time
}

type sensor struct {
	host string
	last time.Time // when the bridge last received an event from it
	// alertStart is when the current FalcoSensorSilent alert started, zero
	// when none is firing; alertSent is when it was last sent.
	alertStart, alertSent time.Time
	// resolvedAt is set when an alerted sensor spoke again.
	resolvedAt time.Time
}

// New returns a Tracker registering its metrics with reg. sender is only
// used when SilentAfter is above 0.
func New(opts Options, sender Sender, logger *slog.Logger, reg prometheus.Registerer) *Tracker {
	defaults.Set(&opts.MaxTracked, DefaultMaxTracked)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	t := &Tracker{
		opts:     opts,
		sender:   sender,
		logger:   logger,
		byHost:   make(map[string]*list.Element),
		lru:      list.New(),
		wake:     make(chan struct{}, 1),
		evictLog: ratelog.New(time.Minute),
		evicted: metric.With(reg, "").Counter("sensors_evicted_total",
			"Sensors forgotten because --sensors.max-tracked was reached; the one heard from longest ago goes first."),
		silentNow: metric.With(reg, "").Gauge("sensors_silent",
			"Tracked sensors quiet for longer than --sensors.silent-after (0 when that is off)."),
	}
	reg.MustRegister(collector{t})
	return t
}

// Seen records that an event from the sensor host arrived at received.
// Events without a hostname (Falco before 0.33) are not tracked.
func (t *Tracker) Seen(host string, received time.Time) {
	if host == "" {
		return
	}
	t.mu.Lock()
	el, ok := t.byHost[host]
	if !ok {
		if clean := cleanHost(host); clean != host {
			if clean == "" {
				t.mu.Unlock()
				return
			}
			host = clean
			el, ok = t.byHost[host]
		}
	}
	if !ok {
		evicted := ""
		if t.lru.Len() >= t.opts.MaxTracked {
			oldest := t.lru.Back()
			t.lru.Remove(oldest)
			evicted = oldest.Value.(*sensor).host
			delete(t.byHost, evicted)
			t.evicted.Inc()
		}
		t.byHost[host] = t.lru.PushFront(&sensor{host: host, last: received})
		t.mu.Unlock()
		if evicted != "" {
			if ok, n := t.evictLog.Allow(received); ok {
				t.logger.Warn("more sensors than --sensors.max-tracked; forgetting the one heard from longest ago",
					"hostname", evicted, "max_tracked", t.opts.MaxTracked, "suppressed_since_last", n)
			}
		}
		return
	}
	s := el.Value.(*sensor)
	if received.After(s.last) {
		s.last = received
	}
	t.lru.MoveToFront(el)
	spoke := !s.alertStart.IsZero() && s.resolvedAt.IsZero()
	if spoke {
		s.resolvedAt = received
		t.spoke = append(t.spoke, s)
	}
	t.mu.Unlock()
	if spoke {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// cleanHost makes host a valid, bounded Prometheus label value without
// control characters, as the mapping makes its labels.
func cleanHost(host string) string {
	host = mapping.StripControl(strings.ToValidUTF8(host, "\uFFFD"))
	return text.Cut(host, maxHostnameBytes)
}

// CheckInterval is how often Run looks for silent sensors: a quarter of
// SilentAfter, between 100ms and 15s.
func (t *Tracker) CheckInterval() time.Duration {
	return min(max(t.opts.SilentAfter/4, 100*time.Millisecond), 15*time.Second)
}

// Run sends FalcoSensorSilent alerts, and resolves them when a sensor
// speaks again, until ctx ends. It returns at once when SilentAfter is 0.
func (t *Tracker) Run(ctx context.Context) {
	if t.opts.SilentAfter <= 0 {
		return
	}
	tick.Every(ctx.Done(), t.CheckInterval(), t.wake, t.Check)
}

// Check sends an alert for every sensor quiet for longer than SilentAfter
// (again every minute while it stays quiet) and a resolving one for every
// alerted sensor heard from since. When more than MaxSilentAlerts are
// quiet it sends one FalcoSensorsSilent for them all instead, resolving the
// alerts of their own, and resolves it once they are few again. Run calls
// it; tests call it directly.
func (t *Tracker) Check() {
	if t.opts.SilentAfter <= 0 {
		return
	}
	now := t.opts.Now()
	var static model.LabelSet
	if t.opts.StaticLabels != nil {
		static = t.opts.StaticLabels()
	}

	t.mu.Lock()
	var alerts []*alert.Alert
	resolved, newlySilent := len(t.spoke), 0
	for _, s := range t.spoke {
		// Ended when it spoke: a past endsAt is what makes Alertmanager
		// resolve it now rather than when the firing one's runs out.
		a := t.alert(s, static, s.resolvedAt, true)
		a.EndsAt, a.Resolve = s.resolvedAt, true
		alerts = append(alerts, a)
		s.alertStart, s.alertSent, s.resolvedAt = time.Time{}, time.Time{}, time.Time{}
	}
	t.spoke = t.spoke[:0]
	// The list is ordered by last contact, so the quiet ones are at the
	// back, the longest quiet last.
	var silent []*sensor
	for el := t.lru.Back(); el != nil; el = el.Prev() {
		s := el.Value.(*sensor)
		if now.Sub(s.last) <= t.opts.SilentAfter {
			break
		}
		silent = append(silent, s)
	}
	grouped := len(silent) > MaxSilentAlerts
	for _, s := range silent {
		switch {
		case grouped && !s.alertStart.IsZero():
			// The grouped alert speaks for it from now on.
			a := t.alert(s, static, now, true)
			a.EndsAt, a.Resolve = now, true
			alerts = append(alerts, a)
			s.alertStart, s.alertSent = time.Time{}, time.Time{}
		case grouped:
		case !s.alertStart.IsZero() && now.Sub(s.alertSent) < resendInterval:
		default:
			if s.alertStart.IsZero() {
				s.alertStart = s.last.Add(t.opts.SilentAfter)
				newlySilent++
			}
			s.alertSent = now
			a := t.alert(s, static, now, false)
			a.EndsAt = now.Add(endsAtFactor * resendInterval)
			alerts = append(alerts, a)
		}
	}
	switch {
	case grouped && (t.groupStart.IsZero() || now.Sub(t.groupSent) >= resendInterval):
		if t.groupStart.IsZero() {
			t.groupStart = now
			newlySilent += len(silent)
		}
		t.groupSent = now
		a := t.groupAlert(silent, static, now)
		a.EndsAt = now.Add(endsAtFactor * resendInterval)
		alerts = append(alerts, a)
	case !grouped && !t.groupStart.IsZero():
		a := t.groupAlert(silent, static, now)
		a.EndsAt, a.Resolve = now, true
		alerts = append(alerts, a)
		t.groupStart, t.groupSent = time.Time{}, time.Time{}
	}
	t.mu.Unlock()
	t.silentNow.Set(float64(len(silent)))
	if newlySilent > 0 || resolved > 0 {
		t.logger.Info("Falco sensors silent or speaking again", "newly_silent", newlySilent, "speaking_again", resolved, "silent", len(silent), "grouped", grouped)
	}

	if len(alerts) == 0 {
		return
	}
	if _, err := t.sender.SendAlerts(alerts); err != nil {
		t.logger.Error("queueing FalcoSensorSilent alerts failed", "alerts", len(alerts), "err", err)
	}
}

// groupAlert builds the FalcoSensorsSilent alert for the silent sensors,
// longest quiet first; the caller sets EndsAt.
func (t *Tracker) groupAlert(silent []*sensor, static model.LabelSet, now time.Time) *alert.Alert {
	labels := make(model.LabelSet, len(static)+2)
	for k, v := range static {
		labels[k] = v
	}
	labels[model.AlertNameLabel] = GroupAlertName
	labels["severity"] = "warning"
	hosts := make([]string, 0, min(len(silent), groupHostsShown))
	for _, s := range silent[:min(len(silent), groupHostsShown)] {
		hosts = append(hosts, mapping.EscapeTemplateDelimiters(s.host))
	}
	shown := strings.Join(hosts, ", ")
	if len(silent) > len(hosts) {
		shown += fmt.Sprintf(" and %d more", len(silent)-len(hosts))
	}
	summary := fmt.Sprintf("%d Falco sensors have sent no event for more than %s", len(silent), model.Duration(t.opts.SilentAfter))
	description := fmt.Sprintf("More than %d Falco sensors are silent at once, so the bridge sends this one alert "+
		"instead of a FalcoSensorSilent for each. Silent longest: %s. A network cut, or an outage of what stands "+
		"between Falco and the bridge, silences many sensors together; "+
		"%s has every one.", MaxSilentAlerts, shown, metric.Name("", "sensor_last_event_timestamp_seconds"))
	if len(silent) <= MaxSilentAlerts {
		summary = fmt.Sprintf("%d Falco sensors are silent now, at most %d", len(silent), MaxSilentAlerts)
		description = "Few enough Falco sensors are silent again for each to have a FalcoSensorSilent of its own."
	}
	return &alert.Alert{
		Labels: labels,
		Annotations: model.LabelSet{
			"summary":        model.LabelValue(summary),
			"description":    model.LabelValue(description),
			"silent_sensors": model.LabelValue(fmt.Sprint(len(silent))),
		},
		StartsAt: t.groupStart,
	}
}

// alert builds the alert of s as of now, firing or resolving; the caller
// sets EndsAt.
func (t *Tracker) alert(s *sensor, static model.LabelSet, now time.Time, resolving bool) *alert.Alert {
	labels := make(model.LabelSet, len(static)+3)
	for k, v := range static {
		labels[k] = v
	}
	// Like the mapping's values: no "{{" a notification template could run.
	host := mapping.EscapeTemplateDelimiters(s.host)
	labels[model.AlertNameLabel] = AlertName
	labels["hostname"] = model.LabelValue(host)
	labels["severity"] = "warning"
	var summary, description string
	if resolving {
		quiet := s.resolvedAt.Sub(s.alertStart.Add(-t.opts.SilentAfter)).Round(time.Second)
		summary = fmt.Sprintf("Falco on %s sends events again after %s of silence", host, model.Duration(quiet))
		description = fmt.Sprintf("falco-am-bridge received an event from the Falco sensor on %s again at %s.",
			host, s.resolvedAt.UTC().Format(time.RFC3339))
	} else {
		quiet := now.Sub(s.last).Round(time.Second)
		summary = fmt.Sprintf("Falco on %s has sent no event for %s", host, model.Duration(quiet))
		description = fmt.Sprintf("falco-am-bridge last received an event from the Falco sensor on %s at %s. "+
			"Falco may have stopped or been evicted, lost its connection to the bridge "+
			"(http_output drops what it cannot deliver), or the host may be gone.", host, s.last.UTC().Format(time.RFC3339))
	}
	return &alert.Alert{
		Labels: labels,
		Annotations: model.LabelSet{
			"summary":         model.LabelValue(summary),
			"description":     model.LabelValue(description),
			"last_event_time": model.LabelValue(s.last.UTC().Format(time.RFC3339)),
		},
		StartsAt: s.alertStart,
	}
}

// collector exports the last contact time of every tracked sensor.
type collector struct{ t *Tracker }

var (
	lastEventDesc = metric.With(nil, "").Desc("sensor_last_event_timestamp_seconds",
		"When the bridge last received an event from the Falco sensor on this host (Unix time). Bounded by --sensors.max-tracked.",
		"hostname")
	trackedDesc = metric.With(nil, "").Desc("sensors_tracked", "Falco sensors (hostnames) currently tracked.")
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lastEventDesc
	ch <- trackedDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	type sample struct {
		host string
		ts   float64
	}
	c.t.mu.Lock()
	samples := make([]sample, 0, c.t.lru.Len())
	for el := c.t.lru.Front(); el != nil; el = el.Next() {
		s := el.Value.(*sensor)
		samples = append(samples, sample{s.host, float64(s.last.UnixNano()) / 1e9})
	}
	c.t.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(trackedDesc, prometheus.GaugeValue, float64(len(samples)))
	for _, s := range samples {
		ch <- prometheus.MustNewConstMetric(lastEventDesc, prometheus.GaugeValue, s.ts, s.host)
	}
}
