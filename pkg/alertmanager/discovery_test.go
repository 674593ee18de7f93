package alertmanager

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeResolver answers from maps the test changes.
type fakeResolver struct {
	mu  sync.Mutex
	ips map[string][]string
	srv map[string][]*net.SRV
	err error
}

func (r *fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return nil, r.err
	}
	var out []net.IPAddr
	for _, ip := range r.ips[host] {
		out = append(out, net.IPAddr{IP: net.ParseIP(ip)})
	}
	return out, nil
}

func (r *fakeResolver) LookupSRV(_ context.Context, _, _, name string) (string, []*net.SRV, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return "", nil, r.err
	}
	return name, r.srv[name], nil
}

func (r *fakeResolver) set(f func(r *fakeResolver)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestDiscovery(t *testing.T) {
	r := &fakeResolver{
		ips: map[string][]string{"am-headless": {"10.0.0.2", "10.0.0.1"}},
		srv: map[string][]*net.SRV{"_web._tcp.am": {{Target: "am-1.am.", Port: 9093}, {Target: "am-0.am.", Port: 9093}}},
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := mustManager(NewManager(Options{}, nil, logger, prometheus.NewRegistry()))
	defer cancelledClose(m)
	d := NewDiscovery([]Source{
		{Kind: SourceStatic, URL: mustURL(t, "http://static:9093")},
		{Kind: SourceDNSA, URL: mustURL(t, "https://am-headless:9095/prefix")},
		{Kind: SourceDNSSRV, URL: mustURL(t, "http://_web._tcp.am")},
	}, r, m, logger, prometheus.NewRegistry())
	if !d.Dynamic() {
		t.Fatal("DNS sources are dynamic")
	}
	if err := d.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := "http://am-0.am:9093,http://am-1.am:9093,http://static:9093,https://10.0.0.1:9095/prefix,https://10.0.0.2:9095/prefix"
	if got := strings.Join(m.Targets(), ","); got != want {
		t.Fatalf("targets %s, want %s", got, want)
	}

	// A third Alertmanager appears; the queues of the others are kept.
	before := map[string]*sender{}
	m.mu.RLock()
	for k, v := range m.senders {
		before[k] = v
	}
	m.mu.RUnlock()
	r.set(func(r *fakeResolver) { r.ips["am-headless"] = append(r.ips["am-headless"], "10.0.0.3") })
	if err := d.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(m.Targets(), ","), "https://10.0.0.3:9095/prefix") {
		t.Fatalf("new address not followed: %v", m.Targets())
	}
	m.mu.RLock()
	for k, v := range before {
		if m.senders[k] != v {
			t.Errorf("the queue of %s was replaced", k)
		}
	}
	m.mu.RUnlock()

	// DNS fails, or answers nothing: the last known addresses stay.
	n := len(m.Targets())
	r.set(func(r *fakeResolver) { r.err = errors.New("server misbehaving") })
	if err := d.Refresh(context.Background()); err == nil {
		t.Fatal("no error from a failed lookup")
	}
	if len(m.Targets()) != n {
		t.Fatalf("a failed lookup changed the targets: %v", m.Targets())
	}
	r.set(func(r *fakeResolver) { r.err = nil; r.ips["am-headless"] = nil })
	if err := d.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "no address") {
		t.Fatalf("empty answer: %v", err)
	}
	if len(m.Targets()) != n {
		t.Fatalf("an empty answer changed the targets: %v", m.Targets())
	}

	// A member that is really gone is dropped.
	r.set(func(r *fakeResolver) { r.ips["am-headless"] = []string{"10.0.0.1"} })
	if err := d.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.Targets(), ","); strings.Contains(got, "10.0.0.2") || strings.Contains(got, "10.0.0.3") {
		t.Fatalf("gone members kept: %s", got)
	}
}

func cancelledClose(m *Manager) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m.Close(ctx, false)
}
