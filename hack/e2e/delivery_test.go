package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
)

// distinctEvent is a warning that makes its own alert: the pod differs.
func distinctEvent(i int) []byte {
	return []byte(fmt.Sprintf(`{"hostname":"node-1","output":"Warning test %d","priority":"Warning","rule":"Delivery test","source":"syscall","time":"%s","output_fields":{"k8s.ns.name":"load","k8s.pod.name":"pod-%05d","container.name":"app","proc.cmdline":"sleep %d"}}`,
		i, time.Now().UTC().Format(time.RFC3339Nano), i, i))
}

// recorder is a reverse proxy in front of a real Alertmanager that counts,
// per alert, the POSTs Alertmanager accepted.
type recorder struct {
	*httptest.Server
	mu        sync.Mutex
	delivered map[string]int // pod_name -> accepted POSTs holding it
	failed    int            // POSTs that did not get a 2xx
}

func newRecorder(t *testing.T, target string) *recorder {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{delivered: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		proxy.ServeHTTP(rec, req)
		var alerts []struct {
			Labels map[string]string `json:"labels"`
		}
		_ = json.Unmarshal(body, &alerts)
		r.mu.Lock()
		defer r.mu.Unlock()
		if rec.code/100 != 2 {
			r.failed++
			return
		}
		for _, a := range alerts {
			r.delivered[a.Labels["pod_name"]]++
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) counts() (distinct, duplicated, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.delivered {
		if n > 1 {
			duplicated++
		}
	}
	return len(r.delivered), duplicated, r.failed
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// amConfig writes an Alertmanager configuration that notifies nobody: the
// delivery tests count alerts, and thousands of groups failing to reach a
// Slack that is not there would only slow Alertmanager down.
func amConfig(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "blackhole.yml")
	cfg := "route:\n  receiver: blackhole\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: blackhole\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func metric(ctx context.Context, t *testing.T, b *harness.Bridge, name string, labels ...string) float64 {
	t.Helper()
	v, err := harness.Metric(ctx, b.URL+"/metrics", name, labels...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func waitUntil(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestAlertmanagerOutage: Alertmanager is down for 30 s while 5,000
// distinct events arrive; once it is back every alert is delivered, and
// none twice.
func TestAlertmanagerOutage(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	amBin := harness.Binary(t, "ALERTMANAGER_BIN")
	dir := t.TempDir()
	cfg := amConfig(t, dir)
	amAddr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	startAM := func() *harness.Process {
		p := harness.StartT(t, exec(amBin, "--config.file="+cfg, "--web.listen-address="+amAddr,
			"--cluster.listen-address=", "--storage.path="+filepath.Join(dir, "am")))
		if err := p.WaitReady(ctx, "http://"+amAddr+"/-/ready"); err != nil {
			t.Fatal(err)
		}
		return p
	}
	am := startAM()
	rec := newRecorder(t, "http://"+amAddr)
	bridge := harness.StartBridge(ctx, t, harness.BridgeOptions{
		Bin: harness.BridgeBinary(t), Alertmanagers: []string{rec.URL},
		Args: []string{"--alertmanager.max-backoff=2s", "--log.level=info"},
	})

	if err := am.Stop(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	const n = 5000
	s := &stack{bridge: bridge}
	for i := range n {
		s.send(t, distinctEvent(i))
	}
	queued := metric(ctx, t, bridge, "falco_am_bridge_alertmanager_queue_length")
	if queued != n {
		t.Errorf("queue length %v while Alertmanager is down, want %d", queued, n)
	}
	time.Sleep(30*time.Second - time.Since(down))
	retries := metric(ctx, t, bridge, "falco_am_bridge_alertmanager_requests_total", "outcome=retryable_error")
	if retries == 0 {
		t.Error("no failed attempts counted during the outage")
	}
	startAM()
	up := time.Now()

	waitUntil(ctx, t, "all alerts in Alertmanager", func() bool { return alertCount(ctx, t, "http://"+amAddr) == n })
	t.Logf("Alertmanager down %s; %d alerts delivered %s after it came back; %v failed attempts meanwhile",
		up.Sub(down).Round(time.Second), n, time.Since(up).Round(100*time.Millisecond), retries)
	distinct, dup, failed := rec.counts()
	if distinct != n || dup != 0 {
		t.Errorf("Alertmanager accepted %d distinct alerts (%d more than once), want %d once each", distinct, dup, n)
	}
	if failed == 0 {
		t.Error("the recorder saw no failed POST during the outage")
	}
	// The bridge counts a batch once it has read the answer, a moment
	// after Alertmanager stored it.
	waitUntil(ctx, t, "every alert counted as sent", func() bool {
		return metric(ctx, t, bridge, "falco_am_bridge_alertmanager_alerts_sent_total") == n
	})
	for name, want := range map[string]float64{
		"falco_am_bridge_alertmanager_alerts_sent_total":    n,
		"falco_am_bridge_alertmanager_alerts_dropped_total": 0,
		"falco_am_bridge_alertmanager_queue_length":         0,
	} {
		if got := metric(ctx, t, bridge, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// TestDurableQueueSurvivesSIGKILL: 2,000 events accepted while Alertmanager
// is down, the bridge killed with SIGKILL, restarted: all 2,000 delivered.
func TestDurableQueueSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	amBin := harness.Binary(t, "ALERTMANAGER_BIN")
	bin := harness.BridgeBinary(t)
	dir := t.TempDir()
	amAddr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	storage := filepath.Join(dir, "queue")
	opts := harness.BridgeOptions{
		Bin: bin, Alertmanagers: []string{"http://" + amAddr},
		Args: []string{"--storage.path=" + storage, "--alertmanager.max-backoff=1s", "--log.level=info"},
	}
	bridge := harness.StartBridge(ctx, t, opts)
	const n = 2000
	s := &stack{bridge: bridge}
	for i := range n {
		s.send(t, distinctEvent(i))
	}
	if got := metric(ctx, t, bridge, "falco_am_bridge_storage_records_written_total"); got != n {
		t.Fatalf("%v records written, want %d", got, n)
	}
	// Outlive a few sync intervals (1s): the store's housekeeping must not
	// let go of records the queues still hold.
	time.Sleep(2500 * time.Millisecond)
	bridge.Kill()

	cfg := amConfig(t, dir)
	am := harness.StartT(t, exec(amBin, "--config.file="+cfg, "--web.listen-address="+amAddr,
		"--cluster.listen-address=", "--storage.path="+filepath.Join(dir, "am")))
	if err := am.WaitReady(ctx, "http://"+amAddr+"/-/ready"); err != nil {
		t.Fatal(err)
	}
	if got := alertCount(ctx, t, "http://"+amAddr); got != 0 {
		t.Fatalf("Alertmanager holds %d alerts before the restart", got)
	}
	restarted := harness.StartBridge(ctx, t, opts)
	waitUntil(ctx, t, "the replayed alerts in Alertmanager", func() bool { return alertCount(ctx, t, "http://"+amAddr) == n })
	// The restarted bridge sent them all (no mark was saved past them),
	// from the spool: it was given nothing new.
	if got := metric(ctx, t, restarted, "falco_am_bridge_alertmanager_alerts_sent_total"); got != n {
		t.Errorf("%v alerts sent after the restart, want %d", got, n)
	}
	// Delivered segments are trimmed: after the restart's own segment goes
	// idle only it, or nothing, is left.
	waitUntil(ctx, t, "delivered segments to be removed", func() bool {
		m, _ := filepath.Glob(filepath.Join(storage, "*.seg"))
		return len(m) <= 1
	})
}

// TestRejectedAlertInABatch: Alertmanager stores the valid alerts of a batch
// and refuses one without labels; the bridge delivers the rest and counts
// the refused one. The bridge itself never makes an alert without labels
// (the mapping and the ingest refuse it), so a proxy in front of the real
// Alertmanager strips the labels of one alert on the way, as a broken
// relabelling proxy would.
func TestRejectedAlertInABatch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	amBin := harness.Binary(t, "ALERTMANAGER_BIN")
	dir := t.TempDir()
	am := harness.StartAlertmanager(ctx, t, harness.AlertmanagerOptions{Bin: amBin, ConfigFile: amConfig(t, dir), DataDir: dir})
	target, err := url.Parse(am.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	stripper := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var alerts []map[string]any
		if json.Unmarshal(body, &alerts) == nil {
			for _, a := range alerts {
				if l, ok := a["labels"].(map[string]any); ok && l["falco_rule"] == "Unlabelled" {
					a["labels"] = map[string]any{}
				}
			}
			body, _ = json.Marshal(alerts)
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(stripper.Close)
	bridge := harness.StartBridge(ctx, t, harness.BridgeOptions{
		Bin: harness.BridgeBinary(t), Alertmanagers: []string{stripper.URL},
		Args: []string{"--alertmanager.batch-wait=200ms"},
	})
	var batch []string
	for i := range 5 {
		batch = append(batch, string(distinctEvent(i)))
	}
	bad := strings.Replace(string(distinctEvent(99)), `"rule":"Delivery test"`, `"rule":"Unlabelled"`, 1)
	batch = append(batch[:2], append([]string{bad}, batch[2:]...)...)
	s := &stack{bridge: bridge}
	s.send(t, []byte("["+strings.Join(batch, ",")+"]"))

	waitUntil(ctx, t, "the rejected alert to be counted", func() bool {
		return metric(ctx, t, bridge, "falco_am_bridge_alertmanager_alerts_dropped_total", "reason=rejected") == 1
	})
	if got := alertCount(ctx, t, am.URL); got != 5 {
		t.Fatalf("Alertmanager holds %d alerts, want the 5 valid ones", got)
	}
	// The valid alerts are re-sent one by one, some after the rejected
	// one is counted.
	waitUntil(ctx, t, "the 5 valid alerts counted as sent", func() bool {
		return metric(ctx, t, bridge, "falco_am_bridge_alertmanager_alerts_sent_total") == 5
	})
	if out := bridge.Output(); !strings.Contains(out, "at least one label pair required") {
		t.Errorf("the log does not give Alertmanager's reason:\n%s", out)
	}
}

func exec(bin string, args ...string) *osexec.Cmd { return osexec.Command(bin, args...) }

// TestGracefulShutdown: on SIGTERM the bridge stops taking events, delivers
// what is queued within the drain timeout, and then exits; what is left is
// counted as dropped, or kept on disk in durable mode.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	amBin := harness.Binary(t, "ALERTMANAGER_BIN")
	bin := harness.BridgeBinary(t)
	const n = 10
	sendAll := func(b *harness.Bridge) {
		s := &stack{bridge: b}
		for i := range n {
			s.send(t, distinctEvent(i))
		}
	}
	stop := func(b *harness.Bridge) time.Duration {
		start := time.Now()
		if err := b.Stop(); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}

	t.Run("queued alerts are delivered before exit", func(t *testing.T) {
		dir := t.TempDir()
		am := harness.StartAlertmanager(ctx, t, harness.AlertmanagerOptions{Bin: amBin, ConfigFile: amConfig(t, dir), DataDir: dir})
		// A long batch wait keeps the alerts queued until the SIGTERM.
		b := harness.StartBridge(ctx, t, harness.BridgeOptions{Bin: bin, Alertmanagers: []string{am.URL}, Args: []string{"--alertmanager.batch-wait=1m"}})
		sendAll(b)
		if got := alertCount(ctx, t, am.URL); got != 0 {
			t.Fatalf("%d alerts delivered before the SIGTERM", got)
		}
		took := stop(b)
		if got := alertCount(ctx, t, am.URL); got != n {
			t.Fatalf("%d alerts delivered at shutdown, want %d", got, n)
		}
		if took > 10*time.Second || !strings.Contains(b.Output(), "all queued alerts delivered") {
			t.Fatalf("shutdown took %v:\n%s", took, b.Output())
		}
	})

	t.Run("what is left after the drain timeout is counted", func(t *testing.T) {
		dead, err := harness.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		b := harness.StartBridge(ctx, t, harness.BridgeOptions{Bin: bin, Alertmanagers: []string{"http://" + dead},
			Args: []string{"--alertmanager.drain-timeout=2s", "--alertmanager.max-backoff=500ms"}})
		sendAll(b)
		took := stop(b)
		if took < 2*time.Second || took > 4*time.Second {
			t.Errorf("shutdown took %v with a 2s drain timeout", took)
		}
		out := b.Output()
		if !strings.Contains(out, "shutdown=10") || !strings.Contains(out, "alerts left undelivered at shutdown are dropped") {
			t.Fatalf("the dropped alerts are not logged and counted:\n%s", out)
		}
	})

	t.Run("durable mode keeps what is left for the next start", func(t *testing.T) {
		dir := t.TempDir()
		amAddr, err := harness.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		opts := harness.BridgeOptions{Bin: bin, Alertmanagers: []string{"http://" + amAddr},
			Args: []string{"--storage.path=" + filepath.Join(dir, "queue"), "--alertmanager.drain-timeout=1s"}}
		b := harness.StartBridge(ctx, t, opts)
		sendAll(b)
		stop(b)
		if out := b.Output(); !strings.Contains(out, "kept in the durable queue") {
			t.Fatalf("shutdown log:\n%s", out)
		}
		am := harness.StartT(t, exec(amBin, "--config.file="+amConfig(t, dir), "--web.listen-address="+amAddr,
			"--cluster.listen-address=", "--storage.path="+filepath.Join(dir, "am")))
		if err := am.WaitReady(ctx, "http://"+amAddr+"/-/ready"); err != nil {
			t.Fatal(err)
		}
		harness.StartBridge(ctx, t, opts)
		waitUntil(ctx, t, "the kept alerts in Alertmanager", func() bool { return alertCount(ctx, t, "http://"+amAddr) == n })
	})
}
