package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	runtimemetrics "runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/pipeline"
)

// TestReadLimited: a body is read whole up to the limit and one byte past
// it, and what it takes from the budget grows with the bytes read, not
// with what the reader could hold.
func TestReadLimited(t *testing.T) {
	const limit = 10000
	for _, n := range []int{0, 1, firstRead - 1, firstRead, firstRead + 1, 4096, limit - 1, limit, limit + 1, 3 * limit} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			in := bytes.Repeat([]byte("x"), n)
			var charged int64
			// The bytes come in pieces, as from a network.
			got, err := readLimited(&chunked{r: bytes.NewReader(in), n: 100}, limit, func(k int64) bool { charged += k; return true })
			if err != nil {
				t.Fatal(err)
			}
			if want := min(n, limit+1); len(got) != want {
				t.Fatalf("read %d bytes, want %d", len(got), want)
			}
			if charged != int64(cap(got)) {
				t.Errorf("charged %d for a buffer of %d", charged, cap(got))
			}
			if bound := int64(2*len(got) + firstRead); charged > bound {
				t.Errorf("charged %d for %d bytes, more than %d", charged, len(got), bound)
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		_, err := readLimited(strings.NewReader(strings.Repeat("x", 2000)), limit, func(k int64) bool { return k < 1000 })
		if !errors.Is(err, errBusy) {
			t.Fatalf("err %v, want errBusy", err)
		}
	})
}

type chunked struct {
	r io.Reader
	n int
}

func (c *chunked) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// TestAnnouncedLengthsCostNothing: 2,000 connections that each announce a
// 4 MiB body and then send nothing, all open at once, leave the heap under
// 64 MiB. Allocating by Content-Length would take 8 GiB.
func TestAnnouncedLengthsCostNothing(t *testing.T) {
	const (
		conns     = 2000
		announced = 4 << 20
		heapBound = 64 << 20
	)
	reg := prometheus.NewRegistry()
	h := New(Options{MaxRequestBytes: announced, MaxEventsPerRequest: 10}, Deps{
		Logger: slog.New(slog.DiscardHandler), Pipeline: &fakePipeline{}, Registry: reg,
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	head := fmt.Sprintf("POST / HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", announced)
	open := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range open {
			_ = c.Close()
		}
	}()
	for range conns {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
	}
	// Every handler has taken its first small buffer and waits for bytes.
	waitGauge(t, reg, "falco_am_bridge_http_request_body_bytes", conns*firstRead)

	runtime.GC()
	sample := []runtimemetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	runtimemetrics.Read(sample)
	if heap := sample[0].Value.Uint64(); heap > heapBound {
		t.Errorf("heap is %d MiB with %d bodies announced, want under %d MiB", heap>>20, conns, heapBound>>20)
	} else {
		t.Logf("heap %d MiB with %d bodies of %d MiB announced", heap>>20, conns, announced>>20)
	}
}

// TestBodiesInFlightBounded: past the budget of all bodies together a
// request is answered 503 with Retry-After, and once the bodies in flight
// are done the same request goes through.
func TestBodiesInFlightBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := New(Options{MaxRequestBytes: 4096, MaxBodyBytesInFlight: 6000, MaxEventsPerRequest: 100}, Deps{
		Logger: slog.New(slog.DiscardHandler), Pipeline: &fakePipeline{}, Registry: reg,
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	body := "[" + strings.Repeat(event+",", 40) + event + "]" // about 2.6 KB
	// A slow sender: half its body now, the rest later.
	slow, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST / HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:2100])
	waitGauge(t, reg, "falco_am_bridge_http_request_body_bytes", 4096)

	post := func() *http.Response {
		t.Helper()
		resp, err := http.Post(srv.URL+"/", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := post(); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("with the budget taken: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	if _, err := io.WriteString(slow, body[2100:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("slow sender: %d", resp.StatusCode)
	}
	waitGauge(t, reg, "falco_am_bridge_http_request_body_bytes", 0)
	if resp := post(); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("after the slow body: %d", resp.StatusCode)
	}
	waitGauge(t, reg, "falco_am_bridge_http_request_body_bytes", 0)
}

// waitGauge waits until the gauge name in reg reads want, giving up after
// a minute.
func waitGauge(t *testing.T, reg prometheus.Gatherer, name string, want float64) {
	t.Helper()
	var got float64
	for range 6000 {
		got = gaugeValue(t, reg, name)
		if got == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s is %v, want %v", name, got, want)
}

func gaugeValue(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// gatePipeline holds every body in Run until release is closed, and
// records the most bytes of bodies in Run at once.
type gatePipeline struct {
	fakePipeline
	mu          sync.Mutex
	bytes, most int
	calls       int
	entered     chan struct{}
	release     chan struct{}
}

func (p *gatePipeline) Run(body []byte, received time.Time, lim falco.Limits) *pipeline.Body {
	p.mu.Lock()
	p.bytes += len(body)
	p.most = max(p.most, p.bytes)
	p.calls++
	release := p.release
	p.mu.Unlock()
	p.entered <- struct{}{}
	<-release
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bytes -= len(body)
	return p.fakePipeline.Run(body, received, lim) // which is not safe for concurrent use

}

// TestBodiesDecodedBounded: bodies being decoded share
// web.max_request_bytes. One of the largest size is decoded alone, so two
// of them never hold their events in memory together, while small bodies
// are decoded one per core at once.
func TestBodiesDecodedBounded(t *testing.T) {
	const limit = 64 << 10
	p := &gatePipeline{entered: make(chan struct{}, 100), release: make(chan struct{})}
	h := New(Options{MaxRequestBytes: limit, MaxBodyBytesInFlight: 16 * limit, MaxEventsPerRequest: 10000}, Deps{
		Logger: slog.New(slog.DiscardHandler), Pipeline: p, Registry: prometheus.NewRegistry(),
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	post := func(body string, codes chan<- int) {
		resp, err := http.Post(srv.URL+"/", "application/json", strings.NewReader(body))
		if err != nil {
			codes <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes <- resp.StatusCode
	}
	large := "[" + event + strings.Repeat(" ", limit-len(event)-2) + "]" // exactly the limit
	small := event
	cores := runtime.GOMAXPROCS(0)
	for _, tc := range []struct {
		name     string
		body     string
		n        int
		wantMost int
	}{
		{"largest bodies", large, 3, limit},
		{"small bodies", small, cores + 2, cores * len(small)},
	} {
		p.mu.Lock()
		p.most, p.calls = 0, 0
		p.mu.Unlock()
		codes := make(chan int, tc.n)
		for range tc.n {
			go post(tc.body, codes)
		}
		// Let in what the bound lets in, and give the others time to
		// get in too if the bound failed.
		for range tc.wantMost / len(tc.body) {
			<-p.entered
		}
		time.Sleep(200 * time.Millisecond)
		p.mu.Lock()
		most, calls := p.most, p.calls
		p.mu.Unlock()
		if most != tc.wantMost || calls != tc.wantMost/len(tc.body) {
			t.Errorf("%s: %d bytes in %d bodies decoded at once, want %d bytes in %d", tc.name, most, calls, tc.wantMost, tc.wantMost/len(tc.body))
		}
		// Release everyone; every request is answered 202.
		p.mu.Lock()
		close(p.release)
		p.mu.Unlock()
		for range tc.n {
			if code := <-codes; code != http.StatusAccepted {
				t.Errorf("%s: answered %d", tc.name, code)
			}
		}
		for len(p.entered) > 0 {
			<-p.entered
		}
		p.mu.Lock()
		p.release = make(chan struct{})
		p.mu.Unlock()
	}
}
