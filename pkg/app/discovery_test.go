package app

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// srvResolver serves SRV records the test changes; A lookups fail.
type srvResolver struct {
	mu      sync.Mutex
	records []*net.SRV
}

func (r *srvResolver) LookupIPAddr(context.Context, string) ([]net.IPAddr, error) {
	return nil, &net.DNSError{Err: "no such host", IsNotFound: true}
}

func (r *srvResolver) LookupSRV(_ context.Context, _, _, name string) (string, []*net.SRV, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if name != "_web._tcp.alertmanager-operated.test" {
		return "", nil, &net.DNSError{Err: "no such host", IsNotFound: true}
	}
	return name, append([]*net.SRV(nil), r.records...), nil
}

func (r *srvResolver) add(t *testing.T, am *fakeAM) {
	t.Helper()
	u, err := url.Parse(am.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	r.mu.Lock()
	r.records = append(r.records, &net.SRV{Target: u.Hostname(), Port: uint16(port)})
	r.mu.Unlock()
}

// startWithSRV starts the bridge sending to the Alertmanagers r finds
// behind one SRV name, looked up again every 50ms.
func startWithSRV(t *testing.T, r *srvResolver) *App {
	t.Helper()
	cfg := loadConfig(t, "--alertmanager.url=dnssrv+http://_web._tcp.alertmanager-operated.test", "--alertmanager.refresh-interval=50ms")
	return runApp(t, cfg, Options{Resolver: r}, func(a *App) bool {
		resp, err := http.Get("http://" + a.Addr() + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// TestDNSDiscovery: the Alertmanagers of a StatefulSet behind one SRV name
// each get every alert, and one that appears starts receiving.
func TestDNSDiscovery(t *testing.T) {
	am1, am2, am3 := newFakeAM(t), newFakeAM(t), newFakeAM(t)
	r := &srvResolver{}
	r.add(t, am1)
	r.add(t, am2)
	a := startWithSRV(t, r)
	if got := metricValue(t, a, "falco_am_bridge_alertmanager_targets"); got != 2 {
		t.Fatalf("%v targets, want 2", got)
	}
	post(t, a, http.MethodPost, "application/json", "", []byte("["+ev("Before A", "Warning")+","+ev("Before B", "Error")+"]"))
	for _, am := range []*fakeAM{am1, am2} {
		waitFor(t, "both Alertmanagers to get both alerts", func() bool { return len(am.alerts()) == 2 })
	}

	r.add(t, am3)
	waitFor(t, "the third Alertmanager to be found", func() bool {
		return metricValue(t, a, "falco_am_bridge_alertmanager_targets") == 3
	})
	post(t, a, http.MethodPost, "application/json", "", []byte(ev("After", "Critical")))
	for _, am := range []*fakeAM{am1, am2, am3} {
		waitFor(t, "every Alertmanager to get the new alert", func() bool {
			return strings.Contains(strings.Join(am.rules(), ","), "After")
		})
	}
	if got := strings.Join(am3.rules(), ","); got != "After" {
		t.Fatalf("the new Alertmanager got %s", got)
	}
}

// TestAlertsWaitForTheFirstAlertmanager: events that arrive before the SRV
// name resolves (the StatefulSet not up yet) are held, not dropped, and
// delivered once an Alertmanager appears.
func TestAlertsWaitForTheFirstAlertmanager(t *testing.T) {
	am := newFakeAM(t)
	r := &srvResolver{}
	a := startWithSRV(t, r)
	resp := post(t, a, http.MethodPost, "application/json", "", []byte("["+ev("Early A", "Warning")+","+ev("Early B", "Error")+"]"))
	if resp.code != http.StatusAccepted || !strings.Contains(resp.body, `"alerts":2`) || !strings.Contains(resp.body, `"alertmanagers":0`) {
		t.Fatalf("got %d %s, want 202 with 2 alerts held for no Alertmanager yet", resp.code, resp.body)
	}
	if got := metricValue(t, a, "falco_am_bridge_alertmanager_queue_length"); got != 2 {
		t.Errorf("queue_length sums to %v, want 2 held", got)
	}
	r.add(t, am)
	waitFor(t, "the held alerts to reach the first Alertmanager found", func() bool { return len(am.alerts()) == 2 })
	if got := strings.Join(am.rules(), ","); got != "Early A,Early B" {
		t.Errorf("the Alertmanager got %s", got)
	}
	if got := metricValue(t, a, "falco_am_bridge_alertmanager_alerts_dropped_total"); got != 0 {
		t.Errorf("alerts_dropped_total sums to %v, want 0", got)
	}
}
