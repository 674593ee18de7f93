package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/hack/capture/capture"
)

// metricsSnapshot is Falco's periodic "Falco internal: metrics snapshot"
// event (source internal), as Falco 0.41 sends it from host.
func metricsSnapshot(host string, when time.Time) []byte {
	b, _ := json.Marshal(map[string]any{
		"hostname": host,
		"output":   "Falco metrics snapshot",
		"priority": "Informational",
		"rule":     "Falco internal: metrics snapshot",
		"source":   "internal",
		"time":     when.UTC().Format(time.RFC3339Nano),
		"output_fields": map[string]any{
			"evt.source": "syscall", "falco.version": "0.41.0", "falco.host_num_cpus": 8,
			"falco.n_drops_perc": 0, "scap.n_evts": 123456,
		},
	})
	return b
}

// TestSilentSensor runs the bridge with --sensors.silent-after: a sensor
// whose only events are metrics snapshots (which the mapping drops) goes
// quiet, FalcoSensorSilent reaches Slack through the real Alertmanager,
// and the sensor's next event resolves it.
func TestSilentSensor(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	s := startStack(ctx, t, stackOptions{
		args: []string{"--sensors.silent-after=2s"},
		overrides: `overrides:
  - match:
      rule: ["Falco internal: metrics snapshot"]
    drop: true`,
	})
	s.send(t, metricsSnapshot("quiet-node", time.Now()))
	if n := metric(ctx, t, s.bridge, "falco_am_bridge_events_dropped_total", "reason=override"); n != 1 {
		t.Fatalf("events_dropped_total{reason=override} = %v, want 1: the snapshot must make no alert", n)
	}
	if ts := metric(ctx, t, s.bridge, "falco_am_bridge_sensor_last_event_timestamp_seconds", "hostname=quiet-node"); ts < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Fatalf("sensor_last_event_timestamp_seconds{hostname=quiet-node} = %v", ts)
	}

	const title = "FalcoSensorSilent: host quiet-node"
	firing := s.waitSlack(ctx, t, "[FIRING:1] "+title)
	if !strings.Contains(firing.Text(), "Falco on quiet-node has sent no event for ") {
		t.Errorf("firing message:\n%s", firing.Text())
	}
	if n := metric(ctx, t, s.bridge, "falco_am_bridge_sensors_silent"); n != 1 {
		t.Errorf("sensors_silent = %v, want 1", n)
	}
	var active []struct {
		Labels map[string]string `json:"labels"`
		Status struct {
			State string `json:"state"`
		} `json:"status"`
	}
	getJSON(ctx, t, s.ams[0].URL+"/api/v2/alerts?filter=alertname%3D%22FalcoSensorSilent%22", &active)
	if len(active) != 1 || active[0].Labels["hostname"] != "quiet-node" || active[0].Labels["severity"] != "warning" ||
		active[0].Status.State != "active" {
		t.Fatalf("Alertmanager holds %+v, want one active FalcoSensorSilent for quiet-node", active)
	}

	// Speaking again, the sensor keeps speaking, as Falco sends its
	// snapshots periodically (else it would soon be silent again).
	s.send(t, metricsSnapshot("quiet-node", time.Now()))
	speaking, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-speaking.Done():
				return
			case <-tick.C:
				if resp, err := falcoClient.Post(s.bridge.URL+"/", "application/json", bytes.NewReader(metricsSnapshot("quiet-node", time.Now()))); err == nil {
					resp.Body.Close()
				}
			}
		}
	}()
	resolved := s.waitSlack(ctx, t, "[RESOLVED] "+title)
	stop()
	if !strings.Contains(resolved.Text(), "Falco on quiet-node sends events again after ") {
		t.Errorf("resolved message:\n%s", resolved.Text())
	}
	if pd := s.capture.Records(capture.KindPagerDuty); len(pd) != 0 {
		t.Errorf("a warning reached PagerDuty:\n%s", bodies(pd))
	}
}

// waitSlack waits for a Slack message whose title is title.
func (s *stack) waitSlack(ctx context.Context, t *testing.T, title string) capture.SlackMessage {
	t.Helper()
	var found capture.SlackMessage
	recs, err := s.capture.Wait(ctx, capture.KindSlack, func(recs []capture.Record) bool {
		for _, r := range recs {
			if m, err := r.Slack(); err == nil && m.Title() == title {
				found = m
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("no Slack message %q: %v\n%s", title, err, bodies(recs))
	}
	return found
}

// TestLinksThroughTheBridge: a mapping that sets generator_url and, by
// override, runbook_url and dashboard_url gives a Slack message with those
// links and a silence link, and a PagerDuty event with links, through the
// bridge binary and a real Alertmanager with the shipped configuration.
func TestLinksThroughTheBridge(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	s := startStack(ctx, t, stackOptions{
		generatorURL: `https://falco.example.com/events?rule={{ .Rule | urlquery }}&host={{ .Hostname | urlquery }}`,
		overrides: `overrides:
  - match:
      tags: [shell]
    annotations:
      runbook_url: 'https://runbooks.example.com/falco/{{ .Labels.alertname }}'
      dashboard_url: 'https://grafana.example.com/d/falco?var-pod={{ .Labels.pod_name | urlquery }}'`,
	})
	s.send(t, criticalEvent("api-2", "bash -il", time.Now()))
	slack := s.waitCount(ctx, t, capture.KindSlack, 1)
	pd := s.waitCount(ctx, t, capture.KindPagerDuty, 1)

	m, err := slack[0].Slack()
	if err != nil {
		t.Fatal(err)
	}
	links := map[string]string{}
	for _, l := range regexp.MustCompile(`<([^|<>]+)\|([^<>]+)>`).FindAllStringSubmatch(m.Text(), -1) {
		links[l[2]] = strings.ReplaceAll(l[1], "&amp;", "&")
	}
	for text, want := range map[string]string{
		"Runbook":   "https://runbooks.example.com/falco/TerminalShellInContainer",
		"Source":    "https://falco.example.com/events?rule=Terminal+shell+in+container&host=node-7",
		"Dashboard": "https://grafana.example.com/d/falco?var-pod=api-2",
	} {
		if links[text] != want {
			t.Errorf("Slack %s link = %q, want %q\n%s", text, links[text], want, m.Text())
		}
	}
	if !strings.HasPrefix(links["Silence"], s.ams[0].URL+"/#/silences/new?filter=%7Balertname%3D%22TerminalShellInContainer%22%2C%20") {
		t.Errorf("Slack silence link = %q", links["Silence"])
	}

	ev, err := pd[0].PagerDuty()
	if err != nil {
		t.Fatal(err)
	}
	hrefs := map[string]string{}
	for _, l := range ev.Links {
		hrefs[l.Text] = l.Href
	}
	if hrefs["Runbook"] != links["Runbook"] || hrefs["Source"] != links["Source"] || hrefs["Dashboard"] != links["Dashboard"] ||
		!strings.HasPrefix(hrefs["Silence in Alertmanager"], s.ams[0].URL+"/#/silences/new?filter=") ||
		ev.Client != "Alertmanager" || !strings.HasPrefix(ev.ClientURL, s.ams[0].URL+"/#/alerts?filter=") {
		t.Errorf("PagerDuty links %v, client %q %q", ev.Links, ev.Client, ev.ClientURL)
	}
	t.Logf("Slack:\n%s\nPagerDuty:\n%s", slack[0].Body, pd[0].Body)
}
