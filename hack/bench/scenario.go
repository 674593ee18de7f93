package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
)

// scenario is one load: how many events, how they are packed into
// requests, and how the Alertmanager behind the bridge answers.
type scenario struct {
	Name    string
	Events  int
	Batch   int           // events per request; 1 = one JSON object per POST, as Falco sends
	Conns   int           // keep-alive connections posting in parallel
	Rate    float64       // events per second over all connections; 0 = flat out
	Gzip    bool          // Content-Encoding: gzip
	Storm   bool          // every event is the same alert (one rule, one pod)
	AMDelay time.Duration // the fake Alertmanager answers after this
}

// scenarios are the standard loads, in the order `make bench` runs them.
var scenarios = []scenario{
	{Name: "single", Events: 20_000, Batch: 1, Conns: 8},
	{Name: "array", Events: 200_000, Batch: 100, Conns: 8},
	{Name: "am-5ms", Events: 100_000, Batch: 100, Conns: 8, AMDelay: 5 * time.Millisecond},
	{Name: "storm", Events: 100_000, Batch: 1, Conns: 8, Storm: true},
	{Name: "gzip", Events: 100_000, Batch: 100, Conns: 8, Gzip: true},
	{Name: "steady", Events: 5_000, Batch: 1, Conns: 1, Rate: 1000},
}

func (s scenario) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:events=%d,batch=%d,conns=%d", s.Name, s.Events, s.Batch, s.Conns)
	if s.Rate > 0 {
		fmt.Fprintf(&b, ",rate=%g", s.Rate)
	}
	if s.AMDelay > 0 {
		fmt.Fprintf(&b, ",am-delay=%s", s.AMDelay)
	}
	if s.Gzip {
		b.WriteString(",gzip")
	}
	if s.Storm {
		b.WriteString(",storm")
	}
	return b.String()
}

// describe says in words what the scenario sends.
func (s scenario) describe() string {
	var b strings.Builder
	kind := "distinct"
	if s.Storm {
		kind = "storm (one rule, one pod)"
	}
	fmt.Fprintf(&b, "%s events, %s", thousands(s.Events), kind)
	if s.Batch > 1 {
		fmt.Fprintf(&b, ", arrays of %d", s.Batch)
	} else {
		b.WriteString(", one per POST")
	}
	if s.Gzip {
		b.WriteString(", gzip")
	}
	fmt.Fprintf(&b, ", %d connection%s", s.Conns, plural(s.Conns))
	if s.Rate > 0 {
		fmt.Fprintf(&b, ", %s events/s", thousands(int(s.Rate)))
	} else {
		b.WriteString(", flat out")
	}
	if s.AMDelay > 0 {
		fmt.Fprintf(&b, ", Alertmanager answers in %s", s.AMDelay)
	}
	return b.String()
}

// parseScenario reads name:key=value,... (keys events, batch, conns, rate,
// am-delay; flags gzip, storm). A known name starts from that scenario.
func parseScenario(spec string) (scenario, error) {
	name, opts, _ := strings.Cut(spec, ":")
	if name == "" {
		return scenario{}, fmt.Errorf("scenario %q: no name before ':'", spec)
	}
	sc := scenario{Name: name, Events: 1000, Batch: 1, Conns: 8}
	for _, known := range scenarios {
		if known.Name == name {
			sc = known
		}
	}
	if opts == "" {
		return sc, nil
	}
	for opt := range strings.SplitSeq(opts, ",") {
		key, val, hasVal := strings.Cut(opt, "=")
		var err error
		switch key {
		case "events":
			sc.Events, err = positive(val)
		case "batch":
			sc.Batch, err = positive(val)
		case "conns":
			sc.Conns, err = positive(val)
		case "rate":
			sc.Rate, err = strconv.ParseFloat(val, 64)
			if err == nil && (sc.Rate < 0 || math.IsInf(sc.Rate, 0) || math.IsNaN(sc.Rate)) {
				err = fmt.Errorf("must be 0 (flat out) or more")
			}
		case "am-delay":
			sc.AMDelay, err = time.ParseDuration(val)
		case "gzip", "storm":
			if hasVal {
				err = fmt.Errorf("takes no value")
			}
			if key == "gzip" {
				sc.Gzip = true
			} else {
				sc.Storm = true
			}
		default:
			err = fmt.Errorf("unknown key (events, batch, conns, rate, am-delay, gzip, storm)")
		}
		if err != nil {
			return scenario{}, fmt.Errorf("scenario %q: %s: %w", spec, key, err)
		}
	}
	return sc, nil
}

func positive(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err == nil && n < 1 {
		err = fmt.Errorf("%d is not 1 or more", n)
	}
	return n, err
}

// scaled is the scenario with its event count multiplied by f (at least one
// request).
func (s scenario) scaled(f float64) scenario {
	s.Events = max(1, int(math.Round(float64(s.Events)*f)))
	return s
}

// result is what one scenario measured, on the ceiling and on the bridge.
type result struct {
	Scenario scenario

	Ceiling     loadResult
	CeilCPU     time.Duration
	CeilRSS     int64
	CeilToolCPU time.Duration

	Load     loadResult
	AM       amStats
	CPU      time.Duration
	PeakRSS  int64
	Complete bool          // every accepted event was delivered before the wait ended
	Delivery time.Duration // from the first request to the last Alertmanager request
	ToolCPU  time.Duration // this program's: the load and the fake Alertmanager

	AlertsDropped map[string]float64 // falco_am_bridge_alertmanager_alerts_dropped_total by reason
	EventsDropped map[string]float64 // falco_am_bridge_events_dropped_total by reason
	Invalid       float64            // falco_am_bridge_events_invalid_total
	MappingErrors float64
	Merged        float64

	Ratios []float64 // of every run, when this is the median of several
}

func perSec(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func (r result) acceptedPerSec() float64 { return perSec(r.Load.Accepted, r.Load.Elapsed) }
func (r result) ceilingPerSec() float64  { return perSec(r.Ceiling.Accepted, r.Ceiling.Elapsed) }
func (r result) deliveredPerSec() float64 {
	return perSec(r.AM.Represented, r.Delivery)
}

func (r result) ratio() float64 {
	if c := r.ceilingPerSec(); c > 0 {
		return r.acceptedPerSec() / c
	}
	return 0
}

func perEvent(cpu time.Duration, events int) float64 {
	if events == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(events)
}

// dropped is every event or alert the bridge counted as not delivered.
func (r result) dropped() float64 {
	n := r.Invalid + r.MappingErrors
	for _, v := range r.AlertsDropped {
		n += v
	}
	for _, v := range r.EventsDropped {
		n += v
	}
	return n
}

// runner runs scenarios: the ceiling, then the bridge, each a fresh process.
type runner struct {
	bridge     string   // the falco-am-bridge binary
	bridgeArgs []string // more flags for it
	self       string   // this program's executable, started as the ceiling
	templates  []template
	amBin      string        // the Alertmanager binary of the real-Alertmanager scenarios
	wait       time.Duration // how long delivery may take after the load
	amWait     time.Duration // the same, in the real-Alertmanager scenarios
	amPasses   int           // how many times Alertmanager alone is measured
	settle     time.Duration // quiet time with empty queues that ends the wait early
	// verifyEvery: the fake Alertmanager decodes one request in this many
	// in full (all of them would cost it more CPU than the bridge spends).
	verifyEvery int
	progress    io.Writer
}

func (rn *runner) run(ctx context.Context, sc scenario) (result, error) {
	res := result{Scenario: sc}
	bodies, err := buildBodies(rn.templates, sc, time.Now())
	if err != nil {
		return res, err
	}
	fmt.Fprintf(rn.progress, "%s: %s\n", sc.Name, sc.describe())
	if err := rn.ceiling(ctx, sc, bodies, &res); err != nil {
		return res, fmt.Errorf("ceiling: %w", err)
	}
	fmt.Fprintf(rn.progress, "  ceiling: %.0f events/s; load used %.1f µs/event\n", res.ceilingPerSec(), perEvent(res.CeilToolCPU, res.Ceiling.Events))
	if err := rn.bridgeRun(ctx, sc, bodies, &res); err != nil {
		return res, fmt.Errorf("bridge: %w", err)
	}
	fmt.Fprintf(rn.progress, "  bridge:  %.0f events/s accepted, %d of %d delivered; load and fake Alertmanager used %.1f µs/event\n",
		res.acceptedPerSec(), res.AM.Represented, res.Load.Events, perEvent(res.ToolCPU, res.Load.Events))
	return res, nil
}

func (rn *runner) ceiling(ctx context.Context, sc scenario, bodies []body, res *result) error {
	addr, err := harness.FreeAddr()
	if err != nil {
		return err
	}
	cmd := exec.Command(rn.self)
	cmd.Env = append(os.Environ(), ceilingEnv+"="+addr)
	p, err := harness.Start(cmd)
	if err != nil {
		return err
	}
	defer p.Kill()
	if err := rn.ready(ctx, p, "http://"+addr+"/-/ready"); err != nil {
		return err
	}
	cpu0, err := cpuTime(p.Pid())
	if err != nil {
		return err
	}
	self0, _ := cpuTime(os.Getpid())
	res.Ceiling = load{url: "http://" + addr + "/", bodies: bodies, conns: sc.Conns, rate: sc.Rate, gzip: sc.Gzip}.run(ctx)
	self1, _ := cpuTime(os.Getpid())
	res.CeilToolCPU = self1 - self0
	cpu1, err := cpuTime(p.Pid())
	if err != nil {
		return err
	}
	res.CeilCPU = cpu1 - cpu0
	if res.CeilRSS, err = peakRSS(p.Pid()); err != nil {
		return err
	}
	if res.Ceiling.Accepted != res.Ceiling.Events {
		return fmt.Errorf("the ceiling refused events: %s (first: %s)", res.Ceiling, res.Ceiling.FirstErr)
	}
	return ctx.Err()
}

func (rn *runner) bridgeRun(ctx context.Context, sc scenario, bodies []body, res *result) error {
	clk := newClock(sc.Events)
	am, err := startFakeAM(clk, sc.AMDelay, rn.verifyEvery)
	if err != nil {
		return err
	}
	defer am.Close()
	addr, err := harness.FreeAddr()
	if err != nil {
		return err
	}
	args := append([]string{"serve", "--web.listen-address=" + addr, "--alertmanager.url=" + am.URL}, rn.bridgeArgs...)
	p, err := harness.Start(exec.Command(rn.bridge, args...))
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			p.Kill()
		}
	}()
	fail := func(err error) error {
		return fmt.Errorf("%w\nbridge output:\n%s", err, p.Output())
	}
	url := "http://" + addr
	if err := rn.ready(ctx, p, url+"/-/ready"); err != nil {
		return fail(err)
	}
	cpu0, err := cpuTime(p.Pid())
	if err != nil {
		return err
	}
	self0, _ := cpuTime(os.Getpid())
	start := time.Now()
	res.Load = load{url: url + "/", bodies: bodies, conns: sc.Conns, rate: sc.Rate, gzip: sc.Gzip, clock: clk}.run(ctx)
	res.Complete = rn.waitDelivery(ctx, am, url+"/metrics", res.Load.Accepted)
	cpu1, err := cpuTime(p.Pid())
	if err != nil {
		return fail(err)
	}
	res.CPU = cpu1 - cpu0
	self1, _ := cpuTime(os.Getpid())
	res.ToolCPU = self1 - self0
	if res.PeakRSS, err = peakRSS(p.Pid()); err != nil {
		return fail(err)
	}
	m, err := scrape(ctx, url+"/metrics")
	if err != nil {
		return fail(err)
	}
	res.AlertsDropped = m.by("falco_am_bridge_alertmanager_alerts_dropped_total", "reason")
	res.EventsDropped = m.by("falco_am_bridge_events_dropped_total", "reason")
	res.Invalid = m.sum("falco_am_bridge_events_invalid_total")
	res.MappingErrors = m.sum("falco_am_bridge_mapping_errors_total")
	res.Merged = m.sum("falco_am_bridge_alertmanager_alerts_merged_total")
	res.AM = am.stats(true)
	if !res.AM.Last.IsZero() {
		res.Delivery = res.AM.Last.Sub(start)
	}
	stopped = true
	if err := p.Stop(); err != nil {
		return fail(err)
	}
	return ctx.Err()
}

// ready waits until url answers 200, for at most 30 s.
func (rn *runner) ready(ctx context.Context, p *harness.Process, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return p.WaitReady(ctx, url)
}

// waitDelivery waits until the fake Alertmanager has every accepted event,
// or the bridge's queues (and spool) are empty and nothing arrived for a while (some
// were dropped), or the wait is over. It says whether every event came.
func (rn *runner) waitDelivery(ctx context.Context, am *fakeAM, metricsURL string, accepted int) bool {
	deadline := time.Now().Add(rn.wait)
	quietSince := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s := am.stats(false)
		if s.Represented >= accepted {
			return true
		}
		if s.Last.After(quietSince) {
			quietSince = s.Last
		}
		if time.Since(quietSince) >= rn.settle {
			m, err := scrape(ctx, metricsURL)
			// Look again: what the queue had may have arrived meanwhile.
			s = am.stats(false)
			if s.Represented >= accepted {
				return true
			}
			if err == nil && m.sum("falco_am_bridge_alertmanager_queue_length")+m.sum("falco_am_bridge_alertmanager_spool_backlog") == 0 && !s.Last.After(quietSince) {
				return false
			}
			quietSince = time.Now()
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
