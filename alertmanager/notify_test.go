package alertmanager_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/hack/capture/capture"
	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
)

// alert is what the bridge posts to /api/v2/alerts.
type alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// falcoAlert returns an alert following the bridge's label contract.
func falcoAlert(rule, alertname, severity, pod, command string, start time.Time) alert {
	description := "10:00:00.000000000: Notice " + rule + " (user=root container=nginx command=" + command + " pod=" + pod + ")"
	return alert{
		Labels: map[string]string{
			"alertname":      alertname,
			"falco_rule":     rule,
			"severity":       severity,
			"priority":       "notice",
			"source":         "syscall",
			"hostname":       "node-1",
			"namespace":      "shop",
			"pod_name":       pod,
			"container_name": "nginx",
		},
		Annotations: map[string]string{
			"summary":         rule + " in shop/" + pod + " (nginx)",
			"description":     description,
			"command":         command,
			"user":            "root",
			"process":         "bash",
			"parent_process":  "runc",
			"container_image": "docker.io/library/nginx:1.27",
			"container_id":    "0123456789ab",
			"fd_name":         "/dev/pts/0",
			"tags":            "container,mitre_execution,shell",
			"event_time":      "2026-11-26T10:00:00.000000000Z",
			"output_fields":   `{"container.name":"nginx","evt.time":1795687200000000000,"proc.cmdline":` + quote(command) + `}`,
			"merged_events":   "3",
		},
		StartsAt: start,
		EndsAt:   start.Add(time.Minute),
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// detail returns a custom_details value as a string, failing the test when
// it is missing.
func detail(t *testing.T, ev capture.PagerDutyEvent, key string) string {
	t.Helper()
	v, ok := ev.Detail(key)
	if !ok {
		t.Errorf("custom_details has no %q: %v", key, ev.Payload.CustomDetails)
	}
	return v
}

func TestNotificationsReachSlackAndPagerDuty(t *testing.T) {
	bin := harness.Binary(t, "ALERTMANAGER_BIN")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	receiver := capture.New(nil)
	if err := receiver.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = receiver.Close() })

	dir := t.TempDir()
	const routingKey = "R0UTINGKEY00000000000000000000000"
	cfg, err := harness.WriteAlertmanagerOverlay(shippedConfig, dir, harness.AlertmanagerOverlay{
		GroupWait:           time.Second,
		GroupInterval:       time.Second,
		RepeatInterval:      time.Hour,
		SlackAPIURL:         receiver.URL() + "/slack/services/T000/B000/XXXX",
		PagerDutyRoutingKey: routingKey,
		PagerDutyURL:        receiver.URL() + "/pagerduty/v2/enqueue",
	})
	if err != nil {
		t.Fatal(err)
	}
	am := harness.StartAlertmanager(ctx, t, harness.AlertmanagerOptions{Bin: bin, ConfigFile: cfg, DataDir: dir, LogLevel: "debug"})
	amURL := am.URL

	start := time.Now().Add(-10 * time.Second).UTC().Truncate(time.Millisecond)
	critical := falcoAlert("Terminal shell in container", "TerminalShellInContainer", "critical", "web-0",
		"bash -c 'echo a: b # c'", start)
	// A command line can hold Slack markup; the templates must escape it.
	warning := falcoAlert("Read sensitive file untrusted", "ReadSensitiveFileUntrusted", "warning", "web-1",
		"cat /etc/shadow <!channel> <https://evil.example|click> &", start)
	// The bridge neutralises template delimiters in values: {{ becomes { {.
	neutralised := falcoAlert("Terminal shell in container", "TerminalShellInContainer", "critical", "web-2",
		"sh -c 'echo { { id } }'", start)
	// A raw delimiter, should one reach Alertmanager. With Alertmanager's
	// default PagerDuty details, 0.30 to 0.33 fail this notification
	// ("function \"id\" not defined"); the shipped details quote every value.
	raw := falcoAlert("Terminal shell in container", "TerminalShellInContainer", "critical", "web-3",
		"sh -c 'echo {{ id }}'", start)
	postAlerts(t, amURL, critical, warning, neutralised, raw)

	// Every alert is its own group (group_by holds pod_name): four Slack
	// messages, three PagerDuty events.
	slackRecs, err := receiver.Wait(ctx, capture.KindSlack, func(r []capture.Record) bool { return len(r) >= 4 })
	if err != nil {
		t.Fatalf("%v; got %d Slack messages", err, len(slackRecs))
	}
	pdRecs, err := receiver.Wait(ctx, capture.KindPagerDuty, func(r []capture.Record) bool { return len(r) >= 3 })
	if err != nil {
		t.Fatalf("%v; got %d PagerDuty events:\n%s", err, len(pdRecs), bodies(pdRecs))
	}

	slackByPod := map[string]capture.SlackMessage{}
	for _, rec := range slackRecs {
		var m capture.SlackMessage
		decode(t, rec, &m)
		if len(m.Attachments) != 1 {
			t.Fatalf("Slack message with %d attachments: %s", len(m.Attachments), rec.Body)
		}
		slackByPod[podOf(m.Attachments[0].Title)] = m
	}
	pdByPod := map[string]capture.PagerDutyEvent{}
	for _, rec := range pdRecs {
		var ev capture.PagerDutyEvent
		decode(t, rec, &ev)
		pdByPod[ev.Payload.Component] = ev
	}

	t.Run("critical reaches Slack and PagerDuty", func(t *testing.T) {
		checkSlack(t, slackByPod["web-0"], critical, "danger")
		checkPagerDuty(t, pdByPod["web-0"], critical, routingKey)
	})
	t.Run("warning reaches Slack only", func(t *testing.T) {
		m := checkSlack(t, slackByPod["web-1"], warning, "warning")
		if _, ok := pdByPod["web-1"]; ok {
			t.Errorf("warning alert reached PagerDuty")
		}
		if len(m.Attachments) == 0 {
			return
		}
		if text := m.Attachments[0].Text; strings.Contains(text, "<!channel>") || strings.Contains(text, "<https://") ||
			!strings.Contains(text, "&lt;!channel&gt; &lt;https://evil.example|click&gt; &amp;") {
			t.Errorf("Slack text does not escape markup from the command line:\n%s", text)
		}
	})
	t.Run("neutralised template delimiters pass", func(t *testing.T) {
		checkSlack(t, slackByPod["web-2"], neutralised, "danger")
		checkPagerDuty(t, pdByPod["web-2"], neutralised, routingKey)
	})
	t.Run("raw template delimiters pass", func(t *testing.T) {
		checkSlack(t, slackByPod["web-3"], raw, "danger")
		checkPagerDuty(t, pdByPod["web-3"], raw, routingKey)
	})
	if t.Failed() {
		t.FailNow()
	}

	// Ending the critical alert now gives resolved notifications on both.
	resolved := critical
	resolved.EndsAt = time.Now().UTC()
	postAlerts(t, amURL, resolved)
	isResolved := func(r capture.Record) bool {
		return bytes.Contains(r.Body, []byte(`"event_action":"resolve"`)) ||
			bytes.Contains(r.Body, []byte(`[RESOLVED] Terminal shell in container`))
	}
	for _, kind := range []string{capture.KindSlack, capture.KindPagerDuty} {
		recs, err := receiver.Wait(ctx, kind, func(r []capture.Record) bool {
			return len(r) > 0 && isResolved(r[len(r)-1])
		})
		if err != nil {
			t.Fatalf("no resolved %s notification: %v\n%s", kind, err, bodies(recs))
		}
		last := recs[len(recs)-1]
		if kind == capture.KindPagerDuty {
			var ev capture.PagerDutyEvent
			decode(t, last, &ev)
			if ev.DedupKey != pdByPod["web-0"].DedupKey {
				t.Errorf("resolve dedup_key %q, trigger had %q", ev.DedupKey, pdByPod["web-0"].DedupKey)
			}
		} else {
			var m capture.SlackMessage
			decode(t, last, &m)
			if c := m.Attachments[0].Color; c != "good" || podOf(m.Attachments[0].Title) != "web-0" {
				t.Errorf("resolved Slack message: title %q, color %q", m.Attachments[0].Title, c)
			}
		}
	}
}

func checkSlack(t *testing.T, m capture.SlackMessage, a alert, color string) capture.SlackMessage {
	t.Helper()
	if len(m.Attachments) == 0 {
		t.Errorf("no Slack message for pod %s", a.Labels["pod_name"])
		return m
	}
	att := m.Attachments[0]
	wantTitle := "[FIRING:1] " + a.Labels["falco_rule"] + ": pod shop/" + a.Labels["pod_name"] + ", container nginx, host node-1"
	if att.Title != wantTitle {
		t.Errorf("Slack title = %q, want %q", att.Title, wantTitle)
	}
	if att.Color != color {
		t.Errorf("Slack color = %q, want %q", att.Color, color)
	}
	want := []string{
		a.Labels["falco_rule"], a.Labels["container_name"], a.Labels["pod_name"], a.Labels["namespace"],
		a.Annotations["summary"], a.Annotations["user"], a.Annotations["container_image"], a.Annotations["tags"],
	}
	// Markup characters are escaped, checked separately.
	if !strings.ContainsAny(a.Annotations["command"], "<>&") {
		want = append(want, a.Annotations["description"], "`"+a.Annotations["command"]+"`")
	}
	for _, s := range want {
		if !strings.Contains(att.Text+att.Title, s) {
			t.Errorf("Slack message lacks %q:\n%s\n%s", s, att.Title, att.Text)
		}
	}
	return m
}

func checkPagerDuty(t *testing.T, ev capture.PagerDutyEvent, a alert, routingKey string) {
	t.Helper()
	if ev.EventAction == "" {
		t.Errorf("no PagerDuty event for pod %s", a.Labels["pod_name"])
		return
	}
	p := ev.Payload
	wantSummary := a.Labels["falco_rule"] + ": pod shop/" + a.Labels["pod_name"] + ", container nginx, host node-1"
	if ev.EventAction != "trigger" || ev.RoutingKey != routingKey || p.Summary != wantSummary ||
		p.Severity != "critical" || p.Class != a.Labels["falco_rule"] || p.Source != "node-1" ||
		p.Component != a.Labels["pod_name"] || p.Group != "shop" {
		t.Errorf("PagerDuty event = %s %q, payload summary %q severity %q class %q source %q component %q group %q",
			ev.EventAction, ev.RoutingKey, p.Summary, p.Severity, p.Class, p.Source, p.Component, p.Group)
	}
	for key, want := range map[string]string{
		"falco_rule":     a.Labels["falco_rule"],
		"priority":       a.Labels["priority"],
		"source":         a.Labels["source"],
		"container":      a.Labels["container_name"],
		"pod":            a.Labels["pod_name"],
		"namespace":      a.Labels["namespace"],
		"hostname":       a.Labels["hostname"],
		"summary":        a.Annotations["summary"],
		"description":    a.Annotations["description"],
		"command":        a.Annotations["command"],
		"user":           a.Annotations["user"],
		"process":        a.Annotations["process"],
		"parent_process": a.Annotations["parent_process"],
		"image":          a.Annotations["container_image"],
		"container_id":   a.Annotations["container_id"],
		"fd_name":        a.Annotations["fd_name"],
		"tags":           a.Annotations["tags"],
		"event_time":     a.Annotations["event_time"],
		"merged_events":  a.Annotations["merged_events"],
		"output_fields":  a.Annotations["output_fields"],
		"firing":         a.Annotations["summary"] + " (since " + a.StartsAt.Format("2006-01-02T15:04:05Z") + ")",
	} {
		if got := detail(t, ev, key); got != want {
			t.Errorf("custom_details[%q] = %q, want %q", key, got, want)
		}
	}
	if got := ev.Payload.CustomDetails["resolved"]; got != nil {
		t.Errorf("custom_details[resolved] = %#v, want null", got)
	}
}

func postAlerts(t *testing.T, amURL string, alerts ...alert) {
	t.Helper()
	body, err := json.Marshal(alerts)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(amURL+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v2/alerts: %s %s", resp.Status, msg)
	}
}

func decode(t *testing.T, rec capture.Record, v any) {
	t.Helper()
	if err := json.Unmarshal(rec.Body, v); err != nil {
		t.Fatalf("%s %s: %v\n%s", rec.Kind, rec.Path, err, rec.RawBody)
	}
}

// podOf returns the pod name in a title "...: pod shop/web-0, container ...".
func podOf(title string) string {
	_, after, _ := strings.Cut(title, "pod shop/")
	pod, _, _ := strings.Cut(after, ",")
	return pod
}

func bodies(recs []capture.Record) string {
	var b strings.Builder
	for _, r := range recs {
		b.Write(r.Body)
		b.WriteString(r.RawBody)
		b.WriteByte('\n')
	}
	return b.String()
}
