package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
	"github.com/falco-am-bridge/falco-am-bridge/hack/natscluster"
)

// The JetStream tests run a three-node NATS cluster in this process, a
// stream replicated on all three (R3) capturing falcosidekick's subjects,
// real bridges sharing one durable consumer, and a real Alertmanager
// behind the recorder.

const (
	jsStream   = "FALCO"
	jsConsumer = "bridges"
	jsSubject  = "falco.warning.delivery_test" // falcosidekick's falco.<priority>.<rule>
)

type jsStack struct {
	cluster *natscluster.Cluster
	amBin   string
	amCfg   string
	amAddr  string
	amDir   string
	am      *harness.Process
	rec     *recorder
	bin     string
	args    []string
	bridges []*harness.Bridge
}

func startJetStreamStack(ctx context.Context, t *testing.T, bridges int, bridgeArgs ...string) *jsStack {
	t.Helper()
	s := &jsStack{amBin: harness.Binary(t, "ALERTMANAGER_BIN")}
	bin := harness.BridgeBinary(t)
	dir := t.TempDir()
	c, err := natscluster.Start(ctx, natscluster.Options{Nodes: 3, Dir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Shutdown)
	s.cluster = c
	if err := c.CreateStream(ctx, jsStream, 3, "falco.>"); err != nil {
		t.Fatal(err)
	}
	s.amCfg, s.amDir = amConfig(t, dir), filepath.Join(dir, "am")
	if s.amAddr, err = harness.FreeAddr(); err != nil {
		t.Fatal(err)
	}
	s.startAM(ctx, t)
	s.rec = newRecorder(t, "http://"+s.amAddr)
	args := []string{"--alertmanager.max-backoff=1s", "--log.level=info",
		"--source.nats.stream=" + jsStream, "--source.nats.consumer=" + jsConsumer}
	for _, u := range c.URLs() {
		args = append(args, "--source.nats.url="+u)
	}
	args = append(args, bridgeArgs...)
	s.bin, s.args = bin, args
	for range bridges {
		s.addBridge(ctx, t, s.rec.URL)
	}
	return s
}

// addBridge starts one more bridge on the shared consumer, sending to am.
func (s *jsStack) addBridge(ctx context.Context, t *testing.T, am string) *harness.Bridge {
	t.Helper()
	b := harness.StartBridge(ctx, t, harness.BridgeOptions{Bin: s.bin, Alertmanagers: []string{am}, Args: s.args})
	s.bridges = append(s.bridges, b)
	return b
}

func (s *jsStack) startAM(ctx context.Context, t *testing.T) {
	t.Helper()
	s.am = harness.StartT(t, exec(s.amBin, "--config.file="+s.amCfg, "--web.listen-address="+s.amAddr,
		"--cluster.listen-address=", "--storage.path="+s.amDir))
	if err := s.am.WaitReady(ctx, "http://"+s.amAddr+"/-/ready"); err != nil {
		t.Fatal(err)
	}
}

// amAlerts is the number of alerts Alertmanager holds, from its own
// alertmanager_alerts gauge (cheaper than listing 20,000 alerts).
func (s *jsStack) amAlerts(ctx context.Context, t *testing.T) int {
	t.Helper()
	v, err := harness.Metric(ctx, "http://"+s.amAddr+"/metrics", "alertmanager_alerts")
	if err != nil {
		t.Fatal(err)
	}
	return int(v)
}

// publish stores the events from..to-1 in the stream, each with a message
// id, so that one published again after a lost answer is stored once.
func (s *jsStack) publish(ctx context.Context, from, to int) error {
	nc, js, err := s.cluster.JetStream(nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer nc.Close()
	// In chunks, under the client's bound on answers awaited.
	for lo := from; lo < to; lo += 1000 {
		hi := min(lo+1000, to)
		futures := make([]jetstream.PubAckFuture, 0, hi-lo)
		for i := lo; i < hi; i++ {
			f, err := js.PublishAsync(jsSubject, distinctEvent(i), jetstream.WithMsgID(fmt.Sprint(i)))
			if err != nil {
				return err
			}
			futures = append(futures, f)
		}
		for i, f := range futures {
			select {
			case <-f.Ok():
			case <-f.Err():
				// A node went away with the answer: again, until stored.
				for {
					pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					_, err := js.Publish(pctx, jsSubject, distinctEvent(lo+i), jetstream.WithMsgID(fmt.Sprint(lo+i)))
					cancel()
					if err == nil {
						break
					}
					if ctx.Err() != nil {
						return fmt.Errorf("publishing event %d: %w", lo+i, err)
					}
				}
			case <-ctx.Done():
				return fmt.Errorf("publishing: %w", ctx.Err())
			}
		}
	}
	return nil
}

func (s *jsStack) mustPublish(ctx context.Context, t *testing.T, from, to int) {
	t.Helper()
	if err := s.publish(ctx, from, to); err != nil {
		t.Fatal(err)
	}
}

func (s *jsStack) bridgeMetric(ctx context.Context, t *testing.T, i int, name string) float64 {
	t.Helper()
	return metric(ctx, t, s.bridges[i], name)
}

// waitAll waits until Alertmanager holds n alerts, then checks that they
// are n distinct ones, each accepted by Alertmanager at least once, and
// that the consumer has nothing left.
func (s *jsStack) waitAll(ctx context.Context, t *testing.T, n int) {
	t.Helper()
	waitUntil(ctx, t, fmt.Sprintf("%d alerts in Alertmanager", n), func() bool { return s.amAlerts(ctx, t) >= n })
	if got := alertCount(ctx, t, "http://"+s.amAddr); got != n {
		t.Errorf("Alertmanager holds %d alerts, want %d", got, n)
	}
	distinct, dup, _ := s.rec.counts()
	if distinct != n {
		t.Errorf("Alertmanager accepted %d distinct alerts, want %d", distinct, n)
	}
	if dup > 0 {
		t.Logf("%d alerts were posted more than once (redelivered events; Alertmanager keeps one of each)", dup)
	}
	nc, js, err := s.cluster.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitUntil(ctx, t, "the consumer to have nothing pending", func() bool {
		cons, err := js.Consumer(ctx, jsStream, jsConsumer)
		if err != nil {
			return false
		}
		info, err := cons.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
}

// TestJetStreamTwoBridgesShareAConsumer: 20,000 distinct events in an R3
// stream, two bridges on one durable consumer: every event is in
// Alertmanager once, and each bridge took some.
func TestJetStreamTwoBridgesShareAConsumer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	s := startJetStreamStack(ctx, t, 2)
	const n = 20000
	start := time.Now()
	s.mustPublish(ctx, t, 0, n)
	s.waitAll(ctx, t, n)
	a := s.bridgeMetric(ctx, t, 0, "falco_am_bridge_source_messages_acked_total")
	b := s.bridgeMetric(ctx, t, 1, "falco_am_bridge_source_messages_acked_total")
	t.Logf("%d events through the stream into Alertmanager in %s; acknowledged by the bridges: %v and %v",
		n, time.Since(start).Round(100*time.Millisecond), a, b)
	if a == 0 || b == 0 || a+b < n {
		t.Errorf("acknowledged %v and %v, want both some, %d in all", a, b, n)
	}
}

// TestJetStreamBridgeKilled: one of two bridges is SIGKILLed while it
// holds events whose alerts it has not delivered; NATS gives them to the
// other after ack_wait, and every event reaches Alertmanager. The killed
// bridge sends to an Alertmanager that never answers, so that what it
// holds at the kill is certain to be unacknowledged: with a quick
// Alertmanager it may deliver and acknowledge all it held in the moment
// between a scrape and the kill.
func TestJetStreamBridgeKilled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	s := startJetStreamStack(ctx, t, 1, "--source.nats.ack-wait=3s")
	release := make(chan struct{})
	stalled := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); stalled.Close() })
	doomed := s.addBridge(ctx, t, stalled.URL)
	const n = 10000
	published := make(chan error, 1)
	go func() { published <- s.publish(ctx, 0, n) }()
	var held float64
	waitUntil(ctx, t, "the stalled bridge to hold events", func() bool {
		held = metric(ctx, t, doomed, "falco_am_bridge_source_messages_held")
		return held >= 100
	})
	doomed.Kill()
	killed := time.Now()
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	s.waitAll(ctx, t, n)
	redelivered := s.bridgeMetric(ctx, t, 0, "falco_am_bridge_source_redeliveries_total")
	t.Logf("killed a bridge holding %v events; all %d alerts in Alertmanager %s after the kill; %v events redelivered to the other bridge",
		held, n, time.Since(killed).Round(100*time.Millisecond), redelivered)
	if redelivered < held {
		t.Errorf("the surviving bridge got %v redeliveries, want at least the %v the killed one held", redelivered, held)
	}
}

// TestJetStreamNodeStopped: the node leading the consumer is stopped
// while two bridges take events; the cluster goes on with two nodes, and
// every event, those published before and after, reaches Alertmanager.
func TestJetStreamNodeStopped(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	// Acknowledgements sent to the stopped node are lost: those events
	// come again after ack_wait, kept short here.
	s := startJetStreamStack(ctx, t, 2, "--source.nats.ack-wait=5s")
	const n = 10000
	s.mustPublish(ctx, t, 0, n/2)
	waitUntil(ctx, t, "events delivered", func() bool {
		return s.bridgeMetric(ctx, t, 0, "falco_am_bridge_source_messages_acked_total")+
			s.bridgeMetric(ctx, t, 1, "falco_am_bridge_source_messages_acked_total") >= 500
	})
	leader := s.consumerLeader(ctx, t)
	s.cluster.Stop(leader)
	stopped := time.Now()
	s.mustPublish(ctx, t, n/2, n)
	s.waitAll(ctx, t, n)
	t.Logf("node n%d (the consumer's leader) stopped; all %d alerts in Alertmanager %s later", leader+1, n, time.Since(stopped).Round(100*time.Millisecond))
}

// consumerLeader is the index of the node leading the consumer.
func (s *jsStack) consumerLeader(ctx context.Context, t *testing.T) int {
	t.Helper()
	nc, js, err := s.cluster.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cons, err := js.Consumer(ctx, jsStream, jsConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil || info.Cluster == nil {
		t.Fatalf("consumer info: %v", err)
	}
	var i int
	if _, err := fmt.Sscanf(info.Cluster.Leader, "n%d", &i); err != nil {
		t.Fatalf("leader %q: %v", info.Cluster.Leader, err)
	}
	return i - 1
}

// TestJetStreamAlertmanagerAway: Alertmanager is away for 30 s while
// 5,000 events arrive. The bridges hold max_ack_pending of them (renewing
// them, so none is redelivered), the rest wait in the stream, seen as the
// consumer's lag on /metrics; once Alertmanager is back every event
// reaches it.
func TestJetStreamAlertmanagerAway(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	s := startJetStreamStack(ctx, t, 2, "--source.nats.ack-wait=10s")
	if err := s.am.Stop(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	const n, maxAckPending = 5000, 1000
	s.mustPublish(ctx, t, 0, n)
	lag := func(i int) float64 { return s.bridgeMetric(ctx, t, i, "falco_am_bridge_source_consumer_lag") }
	held := func(i int) float64 { return s.bridgeMetric(ctx, t, i, "falco_am_bridge_source_messages_held") }
	waitUntil(ctx, t, "the lag on /metrics", func() bool { return lag(0) == n-maxAckPending && lag(1) == n-maxAckPending })
	if h := held(0) + held(1); h != maxAckPending {
		t.Errorf("the bridges hold %v events, want max_ack_pending %d", h, maxAckPending)
	}
	time.Sleep(30*time.Second - time.Since(down))
	if got := lag(0); got != n-maxAckPending {
		t.Errorf("lag %v after 30 s, want %d", got, n-maxAckPending)
	}
	s.startAM(ctx, t)
	up := time.Now()
	s.waitAll(ctx, t, n)
	t.Logf("Alertmanager away %s, the lag %d meanwhile; all %d alerts in it %s after it came back",
		up.Sub(down).Round(time.Second), n-maxAckPending, n, time.Since(up).Round(100*time.Millisecond))
	waitUntil(ctx, t, "the lag back to 0", func() bool { return lag(0) == 0 && lag(1) == 0 })
	for i := range s.bridges {
		if r := s.bridgeMetric(ctx, t, i, "falco_am_bridge_source_redeliveries_total"); r != 0 {
			t.Errorf("bridge %d: %v redeliveries: the events held were not renewed", i, r)
		}
	}
}
