package main

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
)

// realAMConfig routes every alert to a receiver without integrations and
// would notify only after an hour: the scenarios measure how fast
// Alertmanager takes alerts in, not how it notifies.
const realAMConfig = `route:
  receiver: none
  group_wait: 1h
  group_interval: 1h
  repeat_interval: 24h
receivers:
  - name: none
`

// realAM is a real Alertmanager process, on loopback, with clustering off
// and a data directory of its own that Close removes.
type realAM struct {
	p   *harness.Process
	URL string
	dir string
}

// startRealAM starts the Alertmanager binary bin on addr and waits until
// it is ready.
func startRealAM(ctx context.Context, bin, addr string) (*realAM, error) {
	dir, err := os.MkdirTemp("", "falco-am-bridge-bench-am-")
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte(realAMConfig), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p, err := harness.Start(exec.Command(bin,
		"--config.file="+cfg,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
		"--log.level=warn",
	))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	am := &realAM{p: p, URL: "http://" + addr, dir: dir}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.WaitReady(rctx, am.URL+"/-/ready"); err != nil {
		am.Close()
		return nil, fmt.Errorf("alertmanager on %s: %w\noutput:\n%s", addr, err, p.Output())
	}
	return am, nil
}

// Close stops Alertmanager and removes its data.
func (am *realAM) Close() {
	_ = am.p.Stop()
	os.RemoveAll(am.dir)
}

// alerts is how many alerts Alertmanager holds, from its own /metrics:
// alertmanager_alerts over every state (active, suppressed, unprocessed).
// The gauge counts distinct label sets that have not resolved, so a
// scenario's events must be distinct alerts with an endsAt ahead.
func (am *realAM) alerts(ctx context.Context) (int, error) {
	m, err := scrape(ctx, am.URL+"/metrics")
	if err != nil {
		return 0, err
	}
	return int(m.sum("alertmanager_alerts")), nil
}

// seqs lists Alertmanager's alerts (GET /api/v2/alerts) and marks, out of
// n, the sequence numbers their descriptions start with. It decodes one
// alert at a time: the list can be hundreds of megabytes.
func (am *realAM) seqs(ctx context.Context, n int) ([]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	body, err := get(ctx, am.URL+"/api/v2/alerts")
	if err != nil {
		return nil, err
	}
	defer body.Close()
	dec := json.NewDecoder(body)
	t, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("GET /api/v2/alerts: %w", err)
	}
	if t != json.Delim('[') {
		return nil, fmt.Errorf("GET /api/v2/alerts: %v where a JSON array starts", t)
	}
	seen := make([]bool, n)
	for dec.More() {
		var a amAlert
		if err := dec.Decode(&a); err != nil {
			return nil, fmt.Errorf("GET /api/v2/alerts: %w", err)
		}
		if seq, ok := parseToken(a.Annotations["description"]); ok && seq < n {
			seen[seq] = true
		}
	}
	return seen, nil
}

// amVersion names the Alertmanager binary's version. `go install` builds
// leave `alertmanager --version` empty, so it comes from the Go build
// information.
func amVersion(bin string) string {
	info, err := buildinfo.ReadFile(bin)
	if err != nil || info.Main.Version == "" {
		return "Alertmanager, unknown version"
	}
	return "Alertmanager " + info.Main.Version
}

// Batch sizes and connections the Alertmanager-alone ceiling tries.
var (
	amCeilingBatches = []int{256, 1024, 4096}
	amCeilingConns   = []int{1, 2, 4}
)

// amCeilingAlerts is how many distinct alerts each try posts, before -scale.
const amCeilingAlerts = 100_000

// amTry is one batch size × connections of the Alertmanager-alone ceiling.
type amTry struct {
	Batch, Conns int
	Load         loadResult
	InAM         int // alertmanager_alerts after the load
	Err          string
}

func (t amTry) perSec() float64 { return perSec(t.Load.Accepted, t.Load.Elapsed) }

// amCeiling is what Alertmanager alone takes: every try, and the best.
type amCeiling struct {
	Alerts int
	Passes int // the best of how many of each try
	Tries  []amTry
	Best   amTry
}

// wireAlerts makes n distinct alerts as the bridge sends them: the events
// of the templates, each made distinct by its sequence number, mapped by
// the shipped mapping and encoded by pkg/alert. Their endsAt is an hour
// ahead, so they stay counted however long the tries take. It fails if
// two alerts have the same labels, since Alertmanager would count them
// once (the real-Alertmanager scenarios rely on the same distinctness).
func wireAlerts(ts []template, n int, now time.Time) ([][]byte, error) {
	m, err := mapping.Default()
	if err != nil {
		return nil, err
	}
	stamp := now.UTC().Format(time.RFC3339Nano)
	out := make([][]byte, 0, n)
	fps := make(map[uint64]int, n)
	var raw []byte
	for seq := range n {
		raw = ts[seq%len(ts)].appendEvent(raw[:0], seq, true, stamp, "")
		evs, errs := falco.Decode(raw)
		if len(errs) > 0 || len(evs) != 1 {
			return nil, fmt.Errorf("event %d: %d events, errors %v", seq, len(evs), errs)
		}
		r := m.Map(&evs[0], now)
		if r.Alert == nil {
			return nil, fmt.Errorf("event %d: the shipped mapping made no alert (%s)", seq, r.Dropped)
		}
		r.Alert.EndsAt = now.Add(time.Hour)
		if err := r.Alert.Check(); err != nil {
			return nil, fmt.Errorf("event %d: %w", seq, err)
		}
		w := alert.Encode(r.Alert)
		if other, dup := fps[w.Fingerprint()]; dup {
			return nil, fmt.Errorf("events %d and %d map to the same labels %s: Alertmanager would hold one alert for both", other, seq, w.JSON[:w.LabelsEnd()])
		}
		fps[w.Fingerprint()] = seq
		out = append(out, w.JSON)
	}
	return out, nil
}

// runAMCeiling posts the alerts straight to a fresh Alertmanager for every
// batch size and number of connections, rn.amPasses times over (the
// machine may be shared), keeping the best pass of each.
func (rn *runner) runAMCeiling(ctx context.Context, n int) (amCeiling, error) {
	c := amCeiling{Alerts: n, Passes: rn.amPasses}
	alerts, err := wireAlerts(rn.templates, n, time.Now())
	if err != nil {
		return c, err
	}
	size := 0
	for _, a := range alerts {
		size += len(a)
	}
	fmt.Fprintf(rn.progress, "Alertmanager alone: %s distinct alerts per try (%d bytes each on average), POST /api/v2/alerts, best of %d\n",
		thousands(n), size/max(n, 1), rn.amPasses)
	for pass := range rn.amPasses {
		i := 0
		for _, batch := range amCeilingBatches {
			var bodies []body
			for first := 0; first < len(alerts); first += batch {
				end := min(first+batch, len(alerts))
				bodies = append(bodies, body{data: alert.JoinBatch(alerts[first:end]), first: first, n: end - first})
			}
			for _, conns := range amCeilingConns {
				t := rn.amTry(ctx, bodies, batch, conns)
				if ctx.Err() != nil {
					return c, ctx.Err()
				}
				fmt.Fprintf(rn.progress, "  pass %d, batch %d × %d: %.0f alerts/s, %d in Alertmanager\n", pass+1, batch, conns, t.perSec(), t.InAM)
				if t.Err != "" {
					fmt.Fprintf(rn.progress, "    failed: %s\n", t.Err)
				}
				switch {
				case pass == 0:
					c.Tries = append(c.Tries, t)
				case t.Err == "" && (c.Tries[i].Err != "" || t.perSec() > c.Tries[i].perSec()):
					c.Tries[i] = t
				}
				i++
			}
		}
	}
	for _, t := range c.Tries {
		if t.Err == "" && t.perSec() > c.Best.perSec() {
			c.Best = t
		}
	}
	if c.Best.Batch == 0 {
		return c, errors.New("no try delivered every alert")
	}
	return c, nil
}

func (rn *runner) amTry(ctx context.Context, bodies []body, batch, conns int) amTry {
	t := amTry{Batch: batch, Conns: conns}
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Err = err.Error()
		return t
	}
	am, err := startRealAM(ctx, rn.amBin, addr)
	if err != nil {
		t.Err = err.Error()
		return t
	}
	defer am.Close()
	t.Load = load{url: am.URL + "/api/v2/alerts", bodies: bodies, conns: conns}.run(ctx)
	if t.InAM, err = am.alerts(ctx); err != nil {
		t.Err = err.Error()
	} else if n := bodies[len(bodies)-1].first + bodies[len(bodies)-1].n; t.Load.Accepted != n || t.InAM != n {
		t.Err = fmt.Sprintf("%s, first failure: %s; want all %d in Alertmanager", t.Load, t.Load.FirstErr, n)
	}
	return t
}
