package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
)

// amWhen says when a real-Alertmanager scenario starts Alertmanager.
type amWhen int

const (
	amFirst amWhen = iota // before the load
	amAfter               // when the load is over
	amNever               // never: the bridge's POSTs are answered 502
)

// realScenario is a load on the bridge in front of the real Alertmanager
// binary. Every event is a distinct alert, so that Alertmanager's own
// count of the alerts it holds says how many arrived.
type realScenario struct {
	Name    string
	Events  int
	Batch   int     // events per request
	Conns   int     // keep-alive connections posting in parallel
	Rate    float64 // events per second over all connections; 0 = flat out
	Durable bool    // --storage.path, a fresh directory
	AM      amWhen
	// Kill, when set, SIGKILLs the bridge this long into the load; it is
	// started again on the same storage once the load is over.
	Kill time.Duration
	Size int // each event padded to about this many bytes; 0 = as it is
	// Drain, with AM amAfter, times the delivery from the first alert
	// Alertmanager took to the last: the bridge sending from its spool,
	// with nothing else running, to compare with Alertmanager alone.
	Drain bool
	// Retry sends a body answered 503 again after its Retry-After, as a
	// batching client does.
	Retry bool
}

// realScenarios run after the fake-Alertmanager ones, in this order.
var realScenarios = []realScenario{
	{Name: "real-burst", Events: 100_000, Batch: 100, Conns: 8},
	{Name: "real-durable", Events: 100_000, Batch: 100, Conns: 8, Durable: true},
	{Name: "real-late", Events: 45_000, Batch: 1, Conns: 4, Rate: 1500, Durable: true, AM: amAfter},
	{Name: "real-drain", Events: 100_000, Batch: 100, Conns: 8, Durable: true, AM: amAfter, Drain: true},
	{Name: "real-crash", Events: 60_000, Batch: 100, Conns: 8, Durable: true, Kill: 2 * time.Second},
	{Name: "real-big", Events: 20_000, Batch: 10, Conns: 8, Size: 60_000, AM: amNever},
	{Name: "real-bodies", Events: 480_000, Batch: 3_000, Conns: 16, AM: amNever, Retry: true},
}

func indexRealScenario(name string) int {
	for i, s := range realScenarios {
		if s.Name == name {
			return i
		}
	}
	return -1
}

// scaled is the scenario with its event count and its time to the kill
// multiplied by f.
func (s realScenario) scaled(f float64) realScenario {
	s.Events = max(1, int(math.Round(float64(s.Events)*f)))
	s.Kill = time.Duration(float64(s.Kill) * f)
	return s
}

func (s realScenario) requests() int { return (s.Events + s.Batch - 1) / s.Batch }

// describe says in words what the scenario does.
func (s realScenario) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s distinct events", thousands(s.Events))
	if s.Size > 0 {
		fmt.Fprintf(&b, " of about %s bytes", thousands(s.Size))
	}
	if s.Batch > 1 {
		fmt.Fprintf(&b, ", arrays of %d", s.Batch)
	} else {
		b.WriteString(", one per POST")
	}
	fmt.Fprintf(&b, ", %d connection%s", s.Conns, plural(s.Conns))
	if s.Rate > 0 {
		fmt.Fprintf(&b, ", %s events/s", thousands(int(s.Rate)))
	} else {
		b.WriteString(", flat out")
	}
	if s.Durable {
		b.WriteString(", durable queue (--storage.path)")
	} else {
		b.WriteString(", memory queue")
	}
	switch s.AM {
	case amAfter:
		b.WriteString(", Alertmanager started when the last event is answered")
	case amNever:
		b.WriteString(", Alertmanager never started (the bridge's POSTs are answered 502)")
	}
	if s.Kill > 0 {
		fmt.Fprintf(&b, ", the bridge SIGKILLed %s into the load and started again on the same storage when it is over", s.Kill)
	}
	if s.Drain {
		b.WriteString("; timed from Alertmanager's first alert to its last (the bridge only sends from its spool)")
	}
	if s.Retry {
		b.WriteString("; a body answered 503 is sent again after its Retry-After")
	}
	return b.String()
}

// realResult is what one real-Alertmanager scenario measured.
type realResult struct {
	Scenario realScenario
	Load     loadResult
	InAM     int  // alerts Alertmanager holds at the end; -1: it never ran
	Complete bool // it holds at least as many as events were answered 202
	// Missing counts the events answered 202 that Alertmanager does not
	// hold, when the scenario checks them one by one (-1 otherwise).
	Missing int
	// Delivery is from the first request (or from starting Alertmanager,
	// when it starts late, or from its first delivery, for a Drain) to the
	// bridge's last delivery; 0 if nothing arrived.
	Delivery time.Duration
	Dropped  map[string]float64 // falco_am_bridge_alertmanager_alerts_dropped_total by reason
	PeakRSS  int64              // the bridge's VmHWM; after a kill, the higher of both processes
	MaxDisk  float64            // falco_am_bridge_storage_bytes, the most seen
	MaxQueue float64            // falco_am_bridge_alertmanager_queue_bytes, the most seen
	MaxHeap  float64            // go_memstats_heap_inuse_bytes of the bridge, the most seen
}

func (r realResult) dropped() float64 {
	n := 0.0
	for _, v := range r.Dropped {
		n += v
	}
	return n
}

func (r realResult) deliveredPerSec() float64 {
	if r.InAM < 0 {
		return 0
	}
	return perSec(r.InAM, r.Delivery)
}

// bridgeWatch scrapes the bridge's /metrics every second while a scenario
// runs: what it has left to send, and the most disk its durable queue
// took. When it delivered comes from the clock (see deliveryClock for why
// not from these scrapes, and why not more often).
type bridgeWatch struct {
	url         string
	clock       *deliveryClock
	mu          sync.Mutex
	outstanding float64   // queue_length + spool_backlog; -1 when the last scrape failed
	scrapedAt   time.Time // when the scrape that outstanding comes from began
	maxDisk     float64
	maxQueue    float64 // queue_bytes
	maxHeap     float64 // go_memstats_heap_inuse_bytes
	stop        context.CancelFunc
	done        chan struct{}
}

func watchBridge(ctx context.Context, metricsURL string, clock *deliveryClock) *bridgeWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &bridgeWatch{url: metricsURL, clock: clock, outstanding: -1, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			w.poll(ctx)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// poll scrapes the bridge once. A scrape that began before the one that
// set outstanding does not overwrite it.
func (w *bridgeWatch) poll(ctx context.Context) {
	at := time.Now()
	m, err := scrape(ctx, w.url)
	w.mu.Lock()
	defer w.mu.Unlock()
	if at.Before(w.scrapedAt) {
		return
	}
	w.scrapedAt = at
	if err != nil {
		w.outstanding = -1
		return
	}
	w.outstanding = m.sum("falco_am_bridge_alertmanager_queue_length") + m.sum("falco_am_bridge_alertmanager_spool_backlog")
	w.maxDisk = max(w.maxDisk, m.sum("falco_am_bridge_storage_bytes"))
	w.maxQueue = max(w.maxQueue, m.sum("falco_am_bridge_alertmanager_queue_bytes"))
	w.maxHeap = max(w.maxHeap, m.sum("go_memstats_heap_inuse_bytes"))
}

// Close stops the scraping.
func (w *bridgeWatch) Close() {
	w.stop()
	<-w.done
}

// idleSince says whether the bridge had nothing left to send in a scrape
// begun after t. A scrape from before the load ended says nothing of what
// the load left: one that began before the bridge accepted it, and a
// slow next scrape, once let a scenario stop waiting with nothing sent.
func (w *bridgeWatch) idleSince(t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.outstanding == 0 && w.scrapedAt.After(t)
}

func (w *bridgeWatch) lastSent() time.Time {
	_, last := w.clock.times()
	return last
}

func (w *bridgeWatch) firstSent() time.Time {
	first, _ := w.clock.times()
	return first
}

// peaks are the most disk, queue bytes and Go heap in use seen.
func (w *bridgeWatch) peaks() (disk, queue, heap float64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxDisk, w.maxQueue, w.maxHeap
}

// realBodies are the requests of a scenario: made up front, or, for
// padded events or bodies of thousands, each when it is sent (a scenario
// of them would not fit in memory).
func realBodies(ts []template, sc realScenario, now time.Time) load {
	stamp := now.UTC().Format("2006-01-02T15:04:05.000000000Z")
	pad := strings.Repeat("padding ", sc.Size/8+1)
	make1 := func(i int) body {
		first := i * sc.Batch
		n := min(sc.Batch, sc.Events-first)
		var b []byte
		if sc.Batch > 1 {
			b = append(b, '[')
		}
		for seq := first; seq < first+n; seq++ {
			if seq > first {
				b = append(b, ',')
			}
			t := ts[seq%len(ts)]
			p := ""
			if sc.Size > 0 {
				at := len(b)
				b = t.appendEvent(b, seq, true, stamp, "")
				p = pad[:max(0, min(len(pad), sc.Size-(len(b)-at)))]
				b = b[:at]
			}
			b = t.appendEvent(b, seq, true, stamp, p)
		}
		if sc.Batch > 1 {
			b = append(b, ']')
		}
		return body{data: b, first: first, n: n}
	}
	l := load{conns: sc.Conns, rate: sc.Rate, answered: make([]bool, sc.requests()), retry: sc.Retry}
	if sc.Size > 0 || sc.Batch >= 1000 {
		l.requests, l.make = sc.requests(), make1
		return l
	}
	for i := range sc.requests() {
		l.bodies = append(l.bodies, make1(i))
	}
	return l
}

// runReal runs one scenario: Alertmanager (unless it starts late or never),
// a fresh bridge sending to it, the load, then the wait for delivery.
func (rn *runner) runReal(ctx context.Context, sc realScenario) (res realResult, err error) {
	res = realResult{Scenario: sc, InAM: -1, Missing: -1}
	fmt.Fprintf(rn.progress, "%s: %s\n", sc.Name, sc.describe())
	clock, err := startDeliveryClock()
	if err != nil {
		return res, err
	}
	defer clock.Close()
	var am *realAM
	defer func() {
		if am != nil {
			am.Close()
		}
	}()
	// startAM starts Alertmanager on a free address and points the clock,
	// the bridge's Alertmanager, at it. An address just found free may be
	// taken again before Alertmanager binds it: try another.
	startAM := func() error {
		for try := 0; ; try++ {
			amAddr, err := harness.FreeAddr()
			if err == nil {
				if am, err = startRealAM(ctx, rn.amBin, amAddr); err == nil {
					return clock.forward("http://" + amAddr)
				}
			}
			if try == 9 || ctx.Err() != nil {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if sc.AM == amFirst {
		if err := startAM(); err != nil {
			return res, err
		}
	}
	addr, err := harness.FreeAddr()
	if err != nil {
		return res, err
	}
	args := []string{"serve", "--web.listen-address=" + addr, "--alertmanager.url=" + clock.URL}
	if sc.Durable {
		dir, err := os.MkdirTemp("", "falco-am-bridge-bench-spool-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(dir)
		args = append(args, "--storage.path="+dir)
	}
	args = append(args, rn.bridgeArgs...)
	url := "http://" + addr
	var p *harness.Process
	startBridge := func() error {
		started, err := harness.Start(exec.Command(rn.bridge, args...))
		if err != nil {
			return err
		}
		p = started
		if err := rn.ready(ctx, p, url+"/-/ready"); err != nil {
			return fmt.Errorf("%w\nbridge output:\n%s", err, p.Output())
		}
		return nil
	}
	if err := startBridge(); err != nil {
		if p != nil {
			p.Kill()
		}
		return res, err
	}
	defer func() {
		if sc.AM == amNever {
			p.Kill() // a SIGTERM would only wait for the drain timeout
			return
		}
		if stopErr := p.Stop(); stopErr != nil && err == nil {
			err = fmt.Errorf("bridge: %w\noutput:\n%s", stopErr, p.Output())
		}
	}()
	w := watchBridge(ctx, url+"/metrics", clock)
	defer w.Close()

	l := realBodies(rn.templates, sc, time.Now())
	l.url = url + "/"
	start := time.Now()
	if sc.Kill > 0 {
		done := make(chan loadResult, 1)
		go func() { done <- l.run(ctx) }()
		select {
		case <-time.After(sc.Kill):
		case <-ctx.Done():
		}
		if res.PeakRSS, err = peakRSS(p.Pid()); err != nil {
			return res, err
		}
		p.Kill()
		res.Load = <-done
		fmt.Fprintf(rn.progress, "  killed at %s; %s events answered 202 of %s\n", sc.Kill, thousands(res.Load.Accepted), thousands(res.Load.Events))
		if err := startBridge(); err != nil {
			return res, fmt.Errorf("restart: %w", err)
		}
	} else {
		res.Load = l.run(ctx)
	}

	from := start
	switch sc.AM {
	case amAfter:
		from = time.Now()
		if err := startAM(); err != nil {
			return res, err
		}
	case amNever:
		// What the queue holds once the load is over is what it keeps.
		select {
		case <-time.After(rn.settle):
		case <-ctx.Done():
		}
	}
	if am != nil {
		res.InAM, res.Complete = rn.waitAM(ctx, am, w, res.Load.Accepted)
		w.poll(ctx) // the peaks may have grown since the last scrape
		if sc.Drain {
			from = w.firstSent()
		}
		if last := w.lastSent(); last.After(from) {
			res.Delivery = last.Sub(from)
		}
		if sc.Kill > 0 {
			seen, err := am.seqs(ctx, sc.Events)
			if err != nil {
				return res, err
			}
			res.Missing = 0
			for i, ok := range l.answered {
				for seq := i * sc.Batch; ok && seq < min((i+1)*sc.Batch, sc.Events); seq++ {
					if !seen[seq] {
						res.Missing++
					}
				}
			}
		}
	}
	rss, err := peakRSS(p.Pid())
	if err != nil {
		return res, err
	}
	res.PeakRSS = max(res.PeakRSS, rss)
	m, err := scrape(ctx, url+"/metrics")
	if err != nil {
		return res, err
	}
	res.Dropped = m.by("falco_am_bridge_alertmanager_alerts_dropped_total", "reason")
	w.Close()
	res.MaxDisk, res.MaxQueue, res.MaxHeap = w.peaks()
	in := "-"
	if res.InAM >= 0 {
		in = thousands(res.InAM)
	}
	fmt.Fprintf(rn.progress, "  %s answered 202, %s in Alertmanager, %s dropped, delivered in %s, peak RSS %.0f MiB\n",
		thousands(res.Load.Accepted), in, thousands(int(res.dropped())), res.Delivery.Round(time.Millisecond), float64(res.PeakRSS)/(1<<20))
	return res, ctx.Err()
}

// waitAM waits until Alertmanager holds want alerts; or the bridge has
// nothing left to send and Alertmanager's count has stopped growing (some
// were dropped); or rn.amWait is over. It returns the last count and
// whether it reached want. Alertmanager's /metrics walks every alert it
// holds, for a second or more at 100,000 alerts, so it is read only when
// the bridge's own (cheap) metrics say it is idle, and every 5 s besides:
// reading it more often would slow down the delivery it measures.
func (rn *runner) waitAM(ctx context.Context, am *realAM, w *bridgeWatch, want int) (int, bool) {
	begun := time.Now()
	deadline := begun.Add(rn.amWait)
	last, grewAt, readAt := -1, begun, time.Time{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		idle := w.idleSince(begun)
		// Alertmanager's /metrics costs it up to a second of CPU when it
		// holds 100,000 alerts: read it when the bridge is idle, or has
		// delivered nothing for 5 s, not while it delivers.
		stalled := time.Since(w.lastSent()) >= 5*time.Second && time.Since(readAt) >= 5*time.Second
		if idle || stalled {
			n, err := am.alerts(ctx)
			readAt = time.Now()
			if err == nil {
				if n >= want {
					return n, true
				}
				if n != last {
					last, grewAt = n, readAt
				} else if idle && time.Since(grewAt) >= rn.settle {
					return n, false
				}
			}
		}
		if time.Now().After(deadline) {
			return last, false
		}
		select {
		case <-ctx.Done():
			return last, false
		case <-tick.C:
		}
	}
}
