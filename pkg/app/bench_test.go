package app

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

// BenchmarkIngest posts one Falco alert per request over loopback HTTP, as
// Falco does, through decoding, mapping and queueing, to an Alertmanager
// that answers at once. Parallel clients keep both cores busy; ns/op is
// per event.
func BenchmarkIngest(b *testing.B) {
	body, err := os.ReadFile("../mapping/testdata/events/syscall_k8s_critical.json")
	if err != nil {
		b.Fatal(err)
	}
	// An Alertmanager that only reads the body: its cost is not ours.
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(am.Close) // after the bridge's own cleanup, which drains
	cfg := loadConfig(b, "--alertmanager.url="+am.URL)
	a := runApp(b, cfg, Options{}, func(a *App) bool {
		resp, err := http.Get("http://" + a.Addr() + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	url := "http://" + a.Addr() + "/"
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		for pb.Next() {
			resp, err := c.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
