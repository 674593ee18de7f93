// Command demo runs falco-am-bridge end to end and shows what Slack and
// PagerDuty receive: a capture server standing in for both, a real
// Alertmanager with the shipped alertmanager.yml, the bridge, and a handful
// of Falco events posted as Falco's http_output posts them. `make demo` runs
// it with ALERTMANAGER_BIN and BRIDGE_BIN set.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/falco-am-bridge/falco-am-bridge/hack/capture/capture"
	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/alertmanager"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/status"
)

// demoOverride is the one change the demo makes to the shipped mapping
// besides the TTL: any shell at warning or above pages, as a team that
// wants to hear of shells at once would set it up.
const demoOverride = `overrides:
  - match:
      tags: [shell]
      min_priority: warning
    labels:
      severity: critical
      team: security
    annotations:
      runbook_url: https://runbooks.example.com/falco/{{ .Labels.alertname }}
`

const (
	groupInterval = 2 * time.Second
	ttl           = "15s"
	routingKey    = "R0UTINGKEY00000000000000000000000"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	d := &demo{out: os.Stdout}
	code := d.run(ctx)
	stop()
	d.cleanup()
	os.Exit(code)
}

// demo implements harness.TB for a program: a fatal error stops the demo
// after running the cleanups.
type demo struct {
	out      io.Writer
	cleanups []func()
	failed   bool
}

type fatal struct{ msg string }

func (d *demo) Helper()                 {}
func (d *demo) Cleanup(f func())        { d.cleanups = append(d.cleanups, f) }
func (d *demo) Failed() bool            { return d.failed }
func (d *demo) Logf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
func (d *demo) Fatalf(f string, a ...any) {
	d.failed = true
	panic(fatal{fmt.Sprintf(f, a...)})
}
func (d *demo) Skipf(f string, a ...any) { d.Fatalf(f, a...) }

func (d *demo) cleanup() {
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
	d.cleanups = nil
}

func (d *demo) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

func (d *demo) run(ctx context.Context) (code int) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			fmt.Fprintln(os.Stderr, "demo failed:", f.msg)
			code = 1
		}
	}()
	started := time.Now()
	root, err := os.Getwd()
	if err != nil {
		d.Fatalf("%v", err)
	}
	dir, err := os.MkdirTemp("", "falco-am-bridge-demo")
	if err != nil {
		d.Fatalf("%v", err)
	}
	d.Cleanup(func() { os.RemoveAll(dir) })

	receiver := capture.New(nil)
	if err := receiver.Start("127.0.0.1:0"); err != nil {
		d.Fatalf("%v", err)
	}
	d.Cleanup(func() { receiver.Close() })

	cfg, err := harness.WriteAlertmanagerOverlay(filepath.Join(root, "alertmanager", "alertmanager.yml"), dir, harness.AlertmanagerOverlay{
		GroupWait: groupInterval, GroupInterval: groupInterval, RepeatInterval: time.Hour,
		SlackAPIURL:         receiver.URL() + "/slack/services/T000/B000/XXXX",
		PagerDutyRoutingKey: routingKey,
		PagerDutyURL:        receiver.URL() + "/pagerduty/v2/enqueue",
	})
	if err != nil {
		d.Fatalf("%v", err)
	}
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	am := harness.StartAlertmanager(startCtx, d, harness.AlertmanagerOptions{
		Bin: harness.Binary(d, "ALERTMANAGER_BIN"), ConfigFile: cfg, DataDir: dir,
	})

	mappingFile := filepath.Join(dir, "mapping.yaml")
	if err := harness.WriteMappingOverlay(filepath.Join(root, "mapping", "default.yaml"), mappingFile,
		harness.MappingOverlay{TTL: ttl, Overrides: demoOverride}); err != nil {
		d.Fatalf("%v", err)
	}
	bridge := harness.StartBridge(startCtx, d, harness.BridgeOptions{
		Bin: harness.Binary(d, "BRIDGE_BIN"), Alertmanagers: []string{am.URL}, MappingFile: mappingFile,
		Addr: bridgeAddr(),
	})

	d.printf("falco-am-bridge demo\n\n")
	d.printf("  Alertmanager UI   %s/#/alerts   (shipped alertmanager/alertmanager.yml; group_wait and group_interval %s for the demo)\n", am.URL, groupInterval)
	d.printf("  bridge            %s/   (POST Falco events here; open it in a browser for the status page)   metrics %s/metrics\n", bridge.URL, bridge.URL)
	d.printf("  Slack, PagerDuty  %s   (a capture server records what Alertmanager sends)\n", receiver.URL())
	d.printf("  mapping           the shipped one, with a TTL of %s (shipped: 10m) so you see the alerts resolve,\n", ttl)
	d.printf("                    and one override: events tagged shell, warning or above, page (severity critical)\n\n")

	events := d.events(root)
	d.printf("Posting %d Falco events, one per request, as Falco's http_output does:\n", len(events))
	for _, e := range events {
		d.post(bridge.URL, e)
	}

	d.printf("\nWaiting for Alertmanager's notifications…\n")
	firingSlack, firingPD := 0, 0
	for _, e := range events {
		firingSlack++
		if e.critical {
			firingPD++
		}
	}
	d.wait(ctx, receiver, firingSlack, firingPD, 30*time.Second)
	d.show(receiver.Records(""), "firing")

	d.printf("\nNo more events: the alerts resolve by themselves when their %s TTL runs out…\n", ttl)
	d.wait(ctx, receiver, 2*firingSlack, 2*firingPD, 45*time.Second)
	d.show(receiver.Records("")[firingSlack+firingPD:], "resolved")

	d.printf("\nBridge metrics (%s/metrics):\n", bridge.URL)
	d.metrics(bridge.URL)
	d.status(bridge.URL)
	if hold(os.Stdin) {
		until := "Ctrl-C"
		if term.IsTerminal(int(os.Stdin.Fd())) {
			until = "you press Enter (or Ctrl-C)"
		}
		d.printf("\nDone in %s. The demo keeps running until %s: look at what the bridge did on its status page.\n", time.Since(started).Round(time.Second), until)
		d.printf("\nStatus page: %s/   (mapping playground: %s/playground, JSON: %s/api/v1/status)\n", bridge.URL, bridge.URL, bridge.URL)
		await(ctx, os.Stdin)
		return 0
	}
	d.printf("\nDone in %s; stopping Alertmanager, the bridge and the capture server (DEMO_HOLD=1 keeps them running).\n", time.Since(started).Round(time.Second))
	d.printf("\nStatus page: %s/   (mapping playground: %s/playground, JSON: %s/api/v1/status)\n", bridge.URL, bridge.URL, bridge.URL)
	return 0
}

// bridgeAddr is the bridge's default port when it is free, so that the
// README's curl commands work against the demo.
func bridgeAddr() string {
	const def = "127.0.0.1:2802"
	ln, err := net.Listen("tcp", def)
	if err != nil {
		return ""
	}
	ln.Close()
	return def
}

// hold says whether the demo keeps running at the end: when asked
// (DEMO_HOLD=1) or when a person watches it (stdin is a terminal). Stdin
// from /dev/null, a pipe or a file, as in CI, is no one watching: /dev/null
// is a character device too, so only a terminal's ioctl tells them apart.
func hold(stdin *os.File) bool {
	if v := os.Getenv("DEMO_HOLD"); v != "" {
		return v == "1" || v == "true"
	}
	return term.IsTerminal(int(stdin.Fd()))
}

// await returns when ctx ends or, when stdin is a terminal, at Enter.
func await(ctx context.Context, stdin *os.File) {
	enter := make(chan struct{})
	if term.IsTerminal(int(stdin.Fd())) {
		go func() {
			_, _ = bufio.NewReader(stdin).ReadString('\n')
			close(enter)
		}()
	}
	select {
	case <-ctx.Done():
	case <-enter:
	}
}

// status prints what the status page shows, from GET /api/v1/status.
func (d *demo) status(url string) {
	resp, err := http.Get(url + "/api/v1/status")
	if err != nil {
		d.Fatalf("%v", err)
	}
	defer resp.Body.Close()
	var s status.Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		d.Fatalf("status: %v", err)
	}
	d.printf("\nStatus (%s/api/v1/status): %d events received, %d accepted, %d rejected\n", url, s.Events.Received, s.Events.Accepted, s.Events.Rejected)
	for _, t := range s.Alertmanagers {
		if t.URL == alertmanager.PendingQueue {
			continue
		}
		d.printf("  %s: queue %d/%d, %d alerts sent in %d requests, last success %s\n", t.URL, t.QueueLength, t.QueueCapacity,
			t.AlertsSent, t.Requests["success"], t.LastSuccess.Format(time.TimeOnly))
	}
	for _, e := range s.Recent.Events {
		what := e.Outcome
		if e.Alert != nil {
			what = "alert " + string(e.Alert.Labels["alertname"]) + " severity=" + string(e.Alert.Labels["severity"])
		}
		d.printf("  %s  %-9s %-40.40s -> %s\n", e.Received.Format(time.TimeOnly), e.Priority, e.Rule, what)
	}
}

type event struct {
	name     string
	body     []byte
	critical bool
}

// events returns the seed example of ../shared when present, then the
// repository's sample events.
func (d *demo) events(root string) []event {
	var out []event
	seed := filepath.Join(root, "..", "shared", "falco-events", "seed-example.json")
	if b, err := os.ReadFile(seed); err == nil {
		out = append(out, event{name: "seed example (nested shape)", body: b, critical: pages(b)})
	} else {
		d.printf("(%s not found; using the repository's samples only)\n", seed)
	}
	files, _ := filepath.Glob(filepath.Join(root, "examples", "events", "*.json"))
	slices.Sort(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			d.Fatalf("%v", err)
		}
		rel, _ := filepath.Rel(root, f)
		out = append(out, event{name: rel, body: b, critical: pages(b)})
	}
	return out
}

// pages says whether the shipped routing sends an event to PagerDuty under
// the demo's mapping: critical priorities, and shells from warning up.
func pages(body []byte) bool {
	var head struct {
		Priority string   `json:"priority"`
		Tags     []string `json:"tags"`
	}
	_ = json.Unmarshal(body, &head)
	p := strings.ToLower(head.Priority)
	if p == "emergency" || p == "alert" || p == "critical" {
		return true
	}
	return slices.Contains(head.Tags, "shell") && (p == "error" || p == "warning")
}

func (d *demo) post(url string, e event) {
	resp, err := http.Post(url+"/", "application/json", bytes.NewReader(e.body))
	if err != nil {
		d.Fatalf("posting %s: %v", e.name, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d.printf("  %-45s -> %d %s\n", e.name, resp.StatusCode, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusAccepted {
		d.Fatalf("the bridge refused %s", e.name)
	}
}

func (d *demo) wait(ctx context.Context, receiver *capture.Server, slack, pd int, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := receiver.Wait(ctx, "", func(r []capture.Record) bool {
		var s, p int
		for _, rec := range r {
			switch rec.Kind {
			case capture.KindSlack:
				s++
			case capture.KindPagerDuty:
				p++
			}
		}
		return s >= slack && p >= pd
	})
	if err != nil {
		d.Fatalf("%v (got %d notifications)", err, len(receiver.Records("")))
	}
}

// show prints notifications the way a responder would read them.
func (d *demo) show(recs []capture.Record, what string) {
	for _, r := range recs {
		switch r.Kind {
		case capture.KindSlack:
			m, err := r.Slack()
			if err != nil {
				d.Fatalf("%v", err)
			}
			d.printf("\n┌─ Slack (%s, color %s)\n│ %s\n", what, m.Attachments[0].Color, m.Title())
			for _, line := range strings.Split(strings.TrimRight(m.Text(), "\n"), "\n") {
				d.printf("│   %s\n", line)
			}
			d.printf("└─\n")
		case capture.KindPagerDuty:
			ev, err := r.PagerDuty()
			if err != nil {
				d.Fatalf("%v", err)
			}
			p := ev.Payload
			d.printf("\n┌─ PagerDuty (%s) event_action=%s severity=%s dedup_key=%.12s…\n│ %s\n", what, ev.EventAction, p.Severity, ev.DedupKey, p.Summary)
			d.printf("│   class=%s component=%s group=%s source=%s\n", p.Class, p.Component, p.Group, p.Source)
			keys := make([]string, 0, len(p.CustomDetails))
			for k := range p.CustomDetails {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				v, _ := ev.Detail(k)
				if v == "" || v == "null" {
					continue
				}
				if len(v) > 160 {
					v = v[:157] + "…"
				}
				d.printf("│   %-14s %s\n", k+":", strings.ReplaceAll(v, "\n", " / "))
			}
			d.printf("└─\n")
		}
	}
}

func (d *demo) metrics(url string) {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		d.Fatalf("%v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "falco_am_bridge_") && !strings.HasPrefix(line, "falco_am_bridge_build_info") &&
			!strings.Contains(line, "_bucket") && !strings.HasSuffix(line, " 0") && !strings.Contains(line, "timestamp") {
			d.printf("  %s\n", line)
		}
	}
}
