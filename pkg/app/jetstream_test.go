package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"

	"github.com/falco-am-bridge/falco-am-bridge/hack/natscluster"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/status"
)

// natsStream runs one NATS server with a stream FALCO on falco.> until
// the test ends, and returns it with a JetStream client.
func natsStream(t testing.TB) (*natscluster.Cluster, jetstream.JetStream) {
	t.Helper()
	c, err := natscluster.Start(context.Background(), natscluster.Options{Nodes: 1, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Shutdown)
	nc, js, err := c.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "FALCO", Subjects: []string{"falco.>"}}); err != nil {
		t.Fatal(err)
	}
	return c, js
}

func podEvent(pod string) []byte {
	return []byte(`{"output":"shell","priority":"Critical","rule":"Terminal shell in container","time":"` +
		time.Now().UTC().Format(time.RFC3339Nano) + `","source":"syscall","hostname":"node-1","output_fields":{"k8s.ns.name":"prod","k8s.pod.name":"` + pod + `"}}`)
}

// TestJetStreamBesideHTTP: events from the stream and from HTTP go
// through the same pipeline to the same Alertmanager, counted in the same
// events metrics; the status API lists the source.
func TestJetStreamBesideHTTP(t *testing.T) {
	c, js := natsStream(t)
	const n = 50
	for i := range n {
		if _, err := js.Publish(t.Context(), "falco.critical.terminal_shell_in_container", podEvent(fmt.Sprintf("nats-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(t.Context(), "falco.critical.x", []byte("not an event")); err != nil {
		t.Fatal(err)
	}
	am := newFakeAM(t)
	a := startApp(t, "--alertmanager.url="+am.URL, "--source.nats.url="+c.URLs()[0], "--source.nats.stream=FALCO", "--source.nats.consumer=bridges")
	for i := range n {
		if r := post(t, a, http.MethodPost, "application/json", "", podEvent(fmt.Sprintf("http-%d", i))); r.code != http.StatusAccepted {
			t.Fatalf("POST: %d %s", r.code, r.body)
		}
	}
	waitFor(t, "every alert delivered", func() bool { return len(am.alerts()) == 2*n })
	pods := map[string]int{}
	for _, al := range am.alerts() {
		pods[strings.SplitN(al.Labels["pod_name"], "-", 2)[0]]++
	}
	if pods["nats"] != n || pods["http"] != n {
		t.Errorf("alerts by origin %v, want %d each", pods, n)
	}
	if got := metricSum(t, a, "falco_am_bridge_events_received_total"); got != 2*n+1 {
		t.Errorf("events_received_total %v, want %d", got, 2*n+1)
	}

	var st status.Status
	waitFor(t, "the source's figures on the status API", func() bool {
		st = getStatus(t, http.DefaultClient, "http://"+a.Addr())
		return len(st.Sources) == 1 && st.Sources[0].Acked == n && st.Sources[0].Termed == 1
	})
	src := st.Sources[0]
	if src.Kind != "jetstream" || src.Stream != "FALCO" || src.Consumer != "bridges" || !src.Connected || src.Held != 0 {
		t.Errorf("source %+v", src)
	}
	page := getBody(t, "http://"+a.Addr()+"/")
	if !strings.Contains(page, "<h2>Sources</h2>") || !strings.Contains(page, "<code>bridges</code>") {
		t.Errorf("the status page has no Sources table with the consumer")
	}
	if want := fmt.Sprintf(`<h2>Alertmanagers <span class="muted">(%d queue`, len(st.Alertmanagers)); len(st.Alertmanagers) == 0 || !strings.Contains(page, want) {
		t.Errorf("the status page does not count the %d Alertmanager queues: no %q", len(st.Alertmanagers), want)
	}
}

// metricSum is the sum of the series of a counter or gauge; with labels
// (name, value, ...), of those series that have them.
func metricSum(tb testing.TB, a *App, name string, labels ...string) float64 {
	tb.Helper()
	mfs, err := a.Registry().Gather()
	if err != nil {
		tb.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, s := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !slices.ContainsFunc(s.GetLabel(), func(lp *dto.LabelPair) bool {
					return lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
				}) {
					continue series
				}
			}
			sum += s.GetCounter().GetValue() + s.GetGauge().GetValue()
		}
	}
	return sum
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// BenchmarkJetStreamBesideHTTP: b.N distinct events wait in a stream
// when the bridge starts, while b.N more are posted over HTTP (4
// connections, one event per POST) at the same time; both go through
// the same pipeline to an Alertmanager that answers at once. It reports
// the events per second of each way in, a stream event counted once it
// is acknowledged (delivered); ns/op is the whole run per pair of events.
func BenchmarkJetStreamBesideHTTP(b *testing.B) {
	c, js := natsStream(b)
	acks := make([]jetstream.PubAckFuture, 0, b.N)
	for i := range b.N {
		f, err := js.PublishAsync("falco.critical.terminal_shell_in_container", podEvent(fmt.Sprintf("nats-%d", i)))
		if err != nil {
			b.Fatal(err)
		}
		acks = append(acks, f)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publishing timed out")
	}
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		}
	}
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(am.Close)
	bodies := make([][]byte, b.N)
	for i := range bodies {
		bodies[i] = podEvent(fmt.Sprintf("http-%d", i))
	}

	b.ResetTimer()
	start := time.Now()
	cfg := loadConfig(b, "--alertmanager.url="+am.URL, "--source.nats.url="+c.URLs()[0], "--source.nats.stream=FALCO", "--log.level=error")
	a := runApp(b, cfg, Options{}, func(a *App) bool { return true })
	var wg sync.WaitGroup
	var next atomic.Int64
	url := "http://" + a.Addr() + "/"
	var httpDone, streamDone time.Duration
	wg.Go(func() {
		const acked = "falco_am_bridge_source_messages_acked_total"
		deadline := time.Now().Add(2 * time.Minute)
		for metricSum(b, a, acked) < float64(b.N) {
			if time.Now().After(deadline) {
				b.Errorf("%v of %d stream events acknowledged", metricSum(b, a, acked), b.N)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		streamDone = time.Since(start)
	})
	var posters sync.WaitGroup
	for range 4 {
		posters.Go(func() {
			cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			for {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) {
					return
				}
				resp, err := cl.Post(url, "application/json", bytes.NewReader(bodies[i]))
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	posters.Wait()
	httpDone = time.Since(start)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/streamDone.Seconds(), "jetstream-events/s")
	b.ReportMetric(float64(b.N)/httpDone.Seconds(), "http-events/s")
}
