package app

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/status"
)

func getStatus(t *testing.T, c *http.Client, url string) status.Status {
	t.Helper()
	resp, err := c.Get(url + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: %d %s", resp.StatusCode, body)
	}
	var s status.Status
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStatusAPI: what the bridge did, as GET /api/v1/status tells it.
func TestStatusAPI(t *testing.T) {
	dir := t.TempDir()
	mappingFile := filepath.Join(dir, "mapping.yaml")
	if err := os.WriteFile(mappingFile, []byte("min_priority: notice\nlabels:\n  alertname: '{{ .Rule }}'\nannotations:\n  command: '{{ .Field \"proc.cmdline\" }}'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	am := newFakeAM(t)
	a := startApp(t, "--alertmanager.url="+am.URL, "--mapping.file="+mappingFile)
	for _, body := range []string{ev("Shell", "Warning"), ev("Chatty", "Debug"), `{"rule":"no priority"}`} {
		post(t, a, http.MethodPost, "application/json", "", []byte(body))
	}
	waitFor(t, "delivery", func() bool { return len(am.alerts()) == 1 })
	url := "http://" + a.Addr()
	var s status.Status
	waitFor(t, "the last success", func() bool {
		s = getStatus(t, http.DefaultClient, url)
		return len(s.Alertmanagers) > 0 && !s.Alertmanagers[0].LastSuccess.IsZero()
	})

	if e := s.Events; e.Received != 3 || e.Accepted != 2 || e.Rejected != 1 || e.Dropped["min_priority"] != 1 {
		t.Errorf("events %+v", e)
	}
	if len(s.Alertmanagers) != 2 || s.Alertmanagers[0].URL != am.URL || s.Alertmanagers[1].URL != "pending" {
		t.Fatalf("alertmanagers %+v", s.Alertmanagers)
	}
	if tg := s.Alertmanagers[0]; tg.AlertsSent != 1 || tg.Requests["success"] != 1 || tg.QueueCapacity != 10000 || tg.QueueLength != 0 || tg.LastError != "" {
		t.Errorf("target %+v", tg)
	}
	var outcomes []string
	for _, e := range s.Recent.Events {
		outcomes = append(outcomes, e.Outcome+":"+e.Rule)
	}
	if strings.Join(outcomes, ",") != "rejected:,dropped:Chatty,alert:Shell" {
		t.Errorf("recent events %v", outcomes)
	}
	if a := s.Recent.Events[2].Alert; a == nil || a.Labels["alertname"] != "Shell" || a.Annotations["command"] != "sh -c id" {
		t.Errorf("alert of the first event %+v", a)
	}
	if s.Mapping.File != mappingFile || !s.Mapping.ReloadOK || s.Recent.MaxEvents != status.DefaultRecentEvents {
		t.Errorf("mapping %+v, recent max %d", s.Mapping, s.Recent.MaxEvents)
	}

	// A failed reload shows, and the running mapping stays.
	if err := os.WriteFile(mappingFile, []byte("min_priority: sometimes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err == nil {
		t.Fatal("reload of a broken mapping succeeded")
	}
	s = getStatus(t, http.DefaultClient, url)
	if s.Mapping.ReloadOK || !strings.Contains(s.Mapping.ReloadErr, `"sometimes" is not a Falco priority`) || s.Mapping.ReloadedAt.IsZero() {
		t.Errorf("after a failed reload: %+v", s.Mapping)
	}
}

// TestStatusRuntime: the status shows the Go memory limit in effect and
// where it came from, as the command line found it.
func TestStatusRuntime(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	debug.SetMemoryLimit(200 << 20)
	am := newFakeAM(t)
	a := runApp(t, loadConfig(t, "--alertmanager.url="+am.URL), Options{MemoryLimitFrom: "runtime.memory_limit"}, func(a *App) bool {
		resp, err := http.Get("http://" + a.Addr() + "/-/healthy")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	s := getStatus(t, http.DefaultClient, "http://"+a.Addr())
	want := status.Runtime{GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0), MemoryLimitBytes: 200 << 20, MemoryLimitFrom: "runtime.memory_limit"}
	if s.Runtime != want {
		t.Errorf("runtime = %+v, want %+v", s.Runtime, want)
	}
	resp, err := http.Get("http://" + a.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), `<dt>Memory limit</dt><dd>200 MiB <span class="muted">(runtime.memory_limit)</span>`) {
		t.Error("the status page does not show the memory limit of 200 MiB from runtime.memory_limit")
	}

	debug.SetMemoryLimit(math.MaxInt64)
	if s := getStatus(t, http.DefaultClient, "http://"+a.Addr()); s.Runtime.MemoryLimitBytes != 0 {
		t.Errorf("memory_limit_bytes = %d without a limit, want 0", s.Runtime.MemoryLimitBytes)
	}
}

// TestUIOffAndLocked: --web.ui=false serves none of it; with a web
// configuration, its basic auth guards the pages too.
func TestUIOffAndLocked(t *testing.T) {
	am := newFakeAM(t)
	off := startApp(t, "--alertmanager.url="+am.URL, "--web.ui=false")
	for _, path := range []string{"/api/v1/status", "/playground", "/static/status.js"} {
		resp, err := http.Get("http://" + off.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s with --web.ui=false: %d", path, resp.StatusCode)
		}
	}
	if r := post(t, off, http.MethodPost, "application/json", "", []byte(ev("Shell", "Warning"))); r.code != http.StatusAccepted {
		t.Fatalf("ingest with the UI off: %d", r.code)
	}

	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	web := writeWebConfig(t, "basic_auth_users:\n  admin: "+string(hash)+"\n")
	locked := startAppWith(t, func(a *App) bool {
		resp, err := http.Get("http://" + a.Addr() + "/-/healthy")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	}, "--alertmanager.url="+am.URL, "--web.config.file="+web)
	for _, path := range []string{"/", "/api/v1/status", "/playground"} {
		resp, err := http.Get("http://" + locked.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials: %d", path, resp.StatusCode)
		}
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: basicAuth{"admin", "s3cret"}}
	if s := getStatus(t, c, "http://"+locked.Addr()); s.Events.Received != 0 {
		t.Errorf("status with credentials: %+v", s.Events)
	}
}

type basicAuth struct{ user, pass string }

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.pass)
	return http.DefaultTransport.RoundTrip(r)
}
