package jetstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/falco-am-bridge/falco-am-bridge/hack/natscluster"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/pipeline"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/storage"
)

const testStream = "FALCO"

// testSink stands for the Alertmanager queues: it keeps the alerts, and
// either lets go of each Ack at once (one queue, delivered) or holds them
// until release.
type testSink struct {
	mu    sync.Mutex
	wires []*alert.Wire
	held  []pipeline.Ack
	hold  bool
	err   error // returned, taking nothing
}

func (s *testSink) SendAll(wires []*alert.Wire, ack pipeline.Ack) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	s.wires = append(s.wires, wires...)
	if ack != nil {
		ack.Add(len(wires))
		for range wires {
			if s.hold {
				s.held = append(s.held, ack)
			} else {
				ack.Done()
			}
		}
	}
	return 1, nil
}

// release lets go of the first n Acks held (all when n < 0).
func (s *testSink) release(n int) {
	s.mu.Lock()
	if n < 0 || n > len(s.held) {
		n = len(s.held)
	}
	acks := s.held[:n]
	s.held = slices.Clone(s.held[n:])
	s.mu.Unlock()
	for _, a := range acks {
		a.Done()
	}
}

func (s *testSink) labels() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.wires))
	for i, w := range s.wires {
		out[i] = string(w.JSON[:w.LabelsEnd()])
	}
	slices.Sort(out)
	return out
}

func newPipeline(t *testing.T, sink pipeline.Sink) *pipeline.Pipeline {
	t.Helper()
	m, err := mapping.Default()
	if err != nil {
		t.Fatal(err)
	}
	return pipeline.New(pipeline.Options{
		Mapping: func() *mapping.Mapping { return m }, Sink: sink,
		Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(),
	})
}

// startServer runs one in-process NATS server with the events stream.
func startServer(t *testing.T, configure func(*server.Options)) *natscluster.Cluster {
	t.Helper()
	c, err := natscluster.Start(t.Context(), natscluster.Options{Nodes: 1, Dir: t.TempDir(), Configure: configure})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Shutdown)
	return c
}

func createStream(t *testing.T, c *natscluster.Cluster, connect ...nats.Option) {
	t.Helper()
	nc, js, err := c.JetStream(connect...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: testStream, Subjects: []string{"falco.>"}}); err != nil {
		t.Fatal(err)
	}
}

// startSource runs a Source until the test ends, then closes it.
func startSource(t *testing.T, o Options, run Runner) (*Source, *prometheus.Registry) {
	t.Helper()
	if o.Stream == "" {
		o.Stream = testStream
	}
	if o.Consumer == "" {
		o.Consumer = "bridges"
	}
	o.PollInterval = 100 * time.Millisecond
	reg := prometheus.NewRegistry()
	s, err := New(o, run, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		s.Close()
	})
	return s, reg
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func consumerInfo(t *testing.T, c *natscluster.Cluster, consumer string, connect ...nats.Option) *jetstream.ConsumerInfo {
	t.Helper()
	nc, js, err := c.JetStream(connect...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cons, err := js.Consumer(t.Context(), testStream, consumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// sidekickPayload is falcosidekick's FalcoPayload as its NATS output
// marshals it: Falco's fields, plus a uuid.
type sidekickPayload struct {
	UUID         string         `json:"uuid,omitempty"`
	Output       string         `json:"output"`
	Priority     string         `json:"priority"`
	Rule         string         `json:"rule"`
	Time         time.Time      `json:"time"`
	OutputFields map[string]any `json:"output_fields"`
	Source       string         `json:"source"`
	Tags         []string       `json:"tags,omitempty"`
	Hostname     string         `json:"hostname,omitempty"`
}

var slug = regexp.MustCompile("[^a-z0-9]+")

// sidekickMessage returns the subject and payload falcosidekick's NATS
// output publishes for a Falco event it received: its default subject
// template falco.<priority>.<rule>, the rule made a slug.
func sidekickMessage(t *testing.T, event []byte) (string, []byte) {
	t.Helper()
	var p sidekickPayload
	d := json.NewDecoder(bytes.NewReader(event))
	d.UseNumber()
	if err := d.Decode(&p); err != nil {
		t.Fatalf("%s: %v", event, err)
	}
	p.UUID = "0b7d2c6e-6f1e-4b8e-9a57-3f0b6d1f7c2a"
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	rule := strings.Trim(slug.ReplaceAllString(strings.ToLower(p.Rule), "_"), "_")
	return "falco." + strings.ToLower(p.Priority) + "." + rule, data
}

func realEvents(t *testing.T) [][]byte {
	t.Helper()
	path := filepath.Join("..", "..", "..", "..", "shared", "falco-events", "real-events.jsonl")
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		t.Skipf("%s not found: ../shared/falco-events lives beside the repository", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
			out = append(out, slices.Clone(line))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFalcosidekickMessages: the real Falco events, published as
// falcosidekick's NATS output publishes them, become through the stream
// the alerts the same events make over HTTP; every message is
// acknowledged, and the consumer is left with nothing pending.
func TestFalcosidekickMessages(t *testing.T) {
	events := realEvents(t)
	c := startServer(t, nil)
	createStream(t, c)
	m, err := mapping.Default()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, ev := range events {
		b := pipeline.Evaluate(m, ev, time.Now(), falco.Limits{})
		for _, o := range b.Outcomes {
			if o.Fate == pipeline.Alerted {
				w := alert.Encode(o.Alert)
				want = append(want, string(w.JSON[:w.LabelsEnd()]))
			}
		}
	}
	slices.Sort(want)

	nc, err := nats.Connect(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subjects := map[string]bool{}
	for _, ev := range events {
		subject, data := sidekickMessage(t, ev)
		subjects[subject] = true
		if err := nc.Publish(subject, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if !subjects["falco.critical.terminal_shell_in_container"] {
		t.Errorf("subjects %v: no falco.critical.terminal_shell_in_container", subjects)
	}

	sink := &testSink{}
	s, reg := startSource(t, Options{URLs: c.URLs()}, newPipeline(t, sink))
	waitFor(t, "every message acknowledged", func() bool {
		return testutil.ToFloat64(s.m.acked)+testutil.ToFloat64(s.m.termed) == float64(len(events))
	})
	if got := sink.labels(); !slices.Equal(got, want) {
		t.Errorf("%d alerts from the stream, %d from the same events over HTTP; first differences:\n%s", len(got), len(want), firstDiff(got, want))
	}
	if n := testutil.ToFloat64(s.m.termed); n != 0 {
		t.Errorf("%v real events terminated as invalid", n)
	}
	waitFor(t, "the consumer to have nothing pending", func() bool {
		info := consumerInfo(t, c, "bridges")
		return info.NumAckPending == 0 && info.NumPending == 0
	})
	if n, err := testutil.GatherAndCount(reg, MetricReceived, MetricAcked, MetricLag, MetricHeld, MetricConnected); err != nil || n != 5 {
		t.Errorf("%d source metrics (%v), want 5", n, err)
	}
}

func firstDiff(got, want []string) string {
	var b strings.Builder
	for i := 0; i < max(len(got), len(want)) && b.Len() < 2000; i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			b.WriteString("got  " + g + "\nwant " + w + "\n")
		}
	}
	return b.String()
}

func criticalEvent(pod string) []byte {
	return []byte(`{"output":"shell","priority":"Critical","rule":"Terminal shell in container","time":"` +
		time.Now().UTC().Format(time.RFC3339Nano) + `","output_fields":{"k8s.ns.name":"default","k8s.pod.name":"` + pod + `"}}`)
}

// TestAckWaitsForTheQueues: a message is acknowledged only once every
// queue has let go of its alert, and max_ack_pending holds the rest in
// the stream, seen as the consumer's lag.
func TestAckWaitsForTheQueues(t *testing.T) {
	c := startServer(t, nil)
	createStream(t, c)
	nc, err := nats.Connect(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const n = 10
	for i := range n {
		if err := nc.Publish("falco.critical.terminal_shell_in_container", criticalEvent(string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	sink := &testSink{hold: true}
	s, _ := startSource(t, Options{URLs: c.URLs(), MaxAckPending: 4}, newPipeline(t, sink))
	waitFor(t, "four events taken", func() bool { return len(sink.labels()) == 4 })
	waitFor(t, "the lag read", func() bool { return testutil.ToFloat64(s.m.lag) == n-4 })
	if info := consumerInfo(t, c, "bridges"); info.NumAckPending != 4 {
		t.Errorf("ack pending %d, want 4", info.NumAckPending)
	}
	if held := s.heldCount(); held != 4 {
		t.Errorf("%v held, want 4", held)
	}
	time.Sleep(300 * time.Millisecond)
	if got := len(sink.labels()); got != 4 {
		t.Fatalf("%d events taken past max_ack_pending 4", got)
	}
	sink.release(1)
	waitFor(t, "one acknowledged and a fifth taken", func() bool {
		return testutil.ToFloat64(s.m.acked) == 1 && len(sink.labels()) == 5
	})
	// Each release lets more in, held in turn.
	waitFor(t, "all acknowledged", func() bool {
		sink.release(-1)
		return testutil.ToFloat64(s.m.acked) == n
	})
	waitFor(t, "the consumer to have nothing pending", func() bool {
		info := consumerInfo(t, c, "bridges")
		return info.NumAckPending == 0 && info.NumPending == 0
	})
}

// TestNKeyAuthentication: a server that takes only an NKey user; the
// source signs in with the seed file.
func TestNKeyAuthentication(t *testing.T) {
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	pub, _ := user.PublicKey()
	seedFile := filepath.Join(t.TempDir(), "bridge.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	c := startServer(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })
	auth, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	createStream(t, c, auth)
	nc, err := nats.Connect(c.URL(), auth)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish("falco.critical.x", criticalEvent("p")); err != nil {
		t.Fatal(err)
	}
	sink := &testSink{}
	s, _ := startSource(t, Options{URLs: c.URLs(), NKeySeedFile: seedFile}, newPipeline(t, sink))
	waitFor(t, "the event acknowledged", func() bool { return testutil.ToFloat64(s.m.acked) == 1 })

	if _, err := New(Options{URLs: c.URLs(), Stream: testStream, Consumer: "x", NKeySeedFile: filepath.Join(t.TempDir(), "none")}, nil, slog.New(slog.DiscardHandler), nil); err == nil ||
		!strings.Contains(err.Error(), "source.nats.nkey_seed_file") {
		t.Errorf("a missing seed file: %v", err)
	}
}

// fakeMsg is a JetStream delivery of seq, recording what was done with it.
type fakeMsg struct {
	data     []byte
	seq, n   uint64
	mu       sync.Mutex
	did      []string
	nakDelay time.Duration
	termWhy  string
	jetstream.Msg
}

func (m *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: m.seq}, NumDelivered: m.n}, nil
}
func (m *fakeMsg) Data() []byte    { return m.data }
func (m *fakeMsg) Subject() string { return "falco.critical.x" }
func (m *fakeMsg) note(s string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.did = append(m.did, s)
	return nil
}
func (m *fakeMsg) Ack() error        { return m.note("ack") }
func (m *fakeMsg) Nak() error        { return m.note("nak") }
func (m *fakeMsg) InProgress() error { return m.note("progress") }
func (m *fakeMsg) NakWithDelay(d time.Duration) error {
	m.nakDelay = d
	return m.note("nak")
}
func (m *fakeMsg) TermWithReason(r string) error {
	m.termWhy = r
	return m.note("term")
}
func (m *fakeMsg) done() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return strings.Join(m.did, ",")
}

func offlineSource(t *testing.T, run Runner) *Source {
	t.Helper()
	s, err := New(Options{URLs: []string{"nats://127.0.0.1:1"}, Stream: testStream, Consumer: "c"}, run, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestWhatBecomesOfAMessage: each fate of an event, and what the message
// gets for it.
func TestWhatBecomesOfAMessage(t *testing.T) {
	debug := []byte(`{"output":"o","priority":"Debug","rule":"r","time":"2026-01-02T12:00:00Z"}`)
	for _, tc := range []struct {
		name     string
		data     []byte
		sinkErr  error
		minPrio  bool
		hold     bool
		want     string
		wantTerm string
	}{
		{name: "alert delivered", data: criticalEvent("p"), want: "ack"},
		{name: "alert queued", data: criticalEvent("p"), hold: true, want: ""},
		{name: "not JSON", data: []byte("sh -c id"), want: "term", wantTerm: "line 1"},
		{name: "no rule", data: []byte(`{"priority":"Critical","time":"2026-01-02T12:00:00Z","output":"o"}`), want: "term", wantTerm: "rule"},
		{name: "empty", data: nil, want: "term"},
		{name: "dropped by the mapping", data: debug, minPrio: true, want: "ack"},
		{name: "spool full", data: criticalEvent("p"), sinkErr: storage.ErrFull, want: "nak"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &testSink{hold: tc.hold, err: tc.sinkErr}
			var run Runner = newPipeline(t, sink)
			if tc.minPrio {
				m, err := mapping.Parse("m.yaml", []byte("min_priority: warning\nlabels:\n  alertname: '{{ .Rule }}'\n"))
				if err != nil {
					t.Fatal(err)
				}
				run = pipeline.New(pipeline.Options{Mapping: func() *mapping.Mapping { return m }, Sink: sink,
					Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()})
			}
			s := offlineSource(t, run)
			msg := &fakeMsg{data: tc.data, seq: 7, n: 1}
			s.handle(msg)
			if got := msg.done(); got != tc.want {
				t.Errorf("message got %q, want %q", got, tc.want)
			}
			if !strings.Contains(msg.termWhy, tc.wantTerm) {
				t.Errorf("term reason %q does not say %q", msg.termWhy, tc.wantTerm)
			}
			if tc.sinkErr != nil && msg.nakDelay <= 0 {
				t.Errorf("nak without a delay")
			}
			wantHeld := 0.0
			if tc.hold {
				wantHeld = 1
			}
			if got := s.heldCount(); got != wantHeld {
				t.Errorf("%v held, want %v", got, wantHeld)
			}
		})
	}
}

// TestRedeliveryOfAHeldEvent: a message delivered again while its alert
// still waits in a queue is not run again (its first acknowledgement
// would let it go before the alert is sent); it is renewed, and the
// latest delivery is acknowledged once the queue lets go.
func TestRedeliveryOfAHeldEvent(t *testing.T) {
	sink := &testSink{hold: true}
	s := offlineSource(t, newPipeline(t, sink))
	first := &fakeMsg{data: criticalEvent("p"), seq: 3, n: 1}
	again := &fakeMsg{data: criticalEvent("p"), seq: 3, n: 2}
	s.handle(first)
	s.handle(again)
	if n := len(sink.labels()); n != 1 {
		t.Fatalf("the event ran %d times", n)
	}
	if got := again.done(); got != "progress" {
		t.Errorf("redelivery got %q, want progress", got)
	}
	if testutil.ToFloat64(s.m.redeliveries) != 1 || testutil.ToFloat64(s.m.received) != 2 {
		t.Errorf("redeliveries %v, received %v", testutil.ToFloat64(s.m.redeliveries), testutil.ToFloat64(s.m.received))
	}
	sink.release(-1)
	if first.done() != "" || again.done() != "progress,ack" {
		t.Errorf("first got %q, redelivery %q; want the redelivery acknowledged", first.done(), again.done())
	}
	// Once let go, a new delivery of it runs again.
	later := &fakeMsg{data: criticalEvent("p"), seq: 3, n: 3}
	s.handle(later)
	if n := len(sink.labels()); n != 2 {
		t.Errorf("a delivery after the acknowledgement did not run (%d runs)", n)
	}
}

// TestCloseGivesBackWhatIsHeld: at shutdown the events whose alerts
// were not delivered are given back (Nak), and a queue letting go of
// them afterwards acknowledges nothing.
func TestCloseGivesBackWhatIsHeld(t *testing.T) {
	sink := &testSink{hold: true}
	s := offlineSource(t, newPipeline(t, sink))
	msg := &fakeMsg{data: criticalEvent("p"), seq: 1, n: 1}
	s.handle(msg)
	s.Close()
	sink.release(-1) // as Close of the queues may, dropping them
	if got := msg.done(); got != "nak" {
		t.Errorf("message got %q, want nak", got)
	}
}

func TestNewNeedsStreamAndConsumer(t *testing.T) {
	_, err := New(Options{URLs: []string{"nats://x:4222"}}, nil, slog.New(slog.DiscardHandler), nil)
	if err == nil {
		t.Fatal("no error")
	}
	if !strings.Contains(err.Error(), "stream") {
		t.Errorf("error %v", err)
	}
}
