package app

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/pflag"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/config"
)

// TestReload: POST /-/reload swaps in the edited mapping; a broken one is
// refused and the running mapping stays.
func TestReload(t *testing.T) {
	am := newFakeAM(t)
	file := filepath.Join(t.TempDir(), "mapping.yaml")
	write := func(version string) {
		t.Helper()
		content := "labels:\n  alertname: '{{ camelCase .Rule }}'\n  version: " + version + "\n"
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("one")
	a := startApp(t, "--alertmanager.url="+am.URL, "--mapping.file="+file)
	doReload := func() (int, string) {
		t.Helper()
		resp, err := http.Post("http://"+a.Addr()+"/-/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := new(strings.Builder)
		_, _ = io.Copy(b, resp.Body)
		return resp.StatusCode, b.String()
	}
	versionOfLast := func(n int) string {
		t.Helper()
		waitFor(t, "delivery", func() bool { return len(am.alerts()) == n })
		return am.alerts()[n-1].Labels["version"]
	}

	post(t, a, http.MethodPost, "application/json", "", []byte(ev("Reload A", "Warning")))
	if v := versionOfLast(1); v != "one" {
		t.Fatalf("version %q", v)
	}

	write("two")
	if code, body := doReload(); code != http.StatusOK {
		t.Fatalf("reload: %d %s", code, body)
	}
	post(t, a, http.MethodPost, "application/json", "", []byte(ev("Reload B", "Warning")))
	if v := versionOfLast(2); v != "two" {
		t.Fatalf("after reload: version %q", v)
	}

	if err := os.WriteFile(file, []byte("labels:\n  version: '{{ .Nope }}'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, body := doReload()
	if code != http.StatusInternalServerError || !strings.Contains(body, "labels.version") {
		t.Fatalf("broken mapping: %d %s", code, body)
	}
	if got := metricValue(t, a, "falco_am_bridge_config_last_reload_successful"); got != 0 {
		t.Fatalf("config_last_reload_successful = %v after a failed reload", got)
	}
	post(t, a, http.MethodPost, "application/json", "", []byte(ev("Reload C", "Warning")))
	if v := versionOfLast(3); v != "two" {
		t.Fatalf("a failed reload changed the mapping: version %q", v)
	}
}

// TestReloadConfigFile: a reload reads --config.file again. The new
// Alertmanager URLs and bearer token apply; flags still win over the
// file; the queue of an Alertmanager that stays keeps its alerts; a broken
// file answers 500 with the reason and keeps everything running; reloads
// from many callers at once are done one after the other.
func TestReloadConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "bridge.yaml")
	tokenFile := filepath.Join(dir, "token")
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	stays := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(stays.Close)
	first, second := newFakeAM(t), newFakeAM(t)
	write(tokenFile, "one\n")
	write(cfgFile, "web:\n  bearer_token_file: "+tokenFile+"\nalertmanager:\n  urls: ["+first.URL+", "+stays.URL+"]\n  queue_capacity: 50\n")

	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	if err := fs.Parse([]string{"--web.listen-address=127.0.0.1:0", "--alertmanager.batch-wait=0s",
		"--config.file=" + cfgFile, "--alertmanager.queue-capacity=7", "--alertmanager.drain-timeout=0s"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(fs)
	if err != nil {
		t.Fatal(err)
	}
	a := runApp(t, cfg, Options{LoadConfig: func() (*config.Config, error) { return config.Load(fs) }}, func(a *App) bool {
		resp, err := http.Get("http://" + a.Addr() + "/-/healthy")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	send := func(token, rule string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr()+"/", strings.NewReader(ev(rule, "Warning")))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	reload := func(token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr()+"/-/reload", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	queueLength := func(am string) float64 {
		t.Helper()
		return metricWith(t, a, "falco_am_bridge_alertmanager_queue_length", "alertmanager", am)
	}

	if code := send("one", "Before"); code != http.StatusAccepted {
		t.Fatalf("send: %d", code)
	}
	waitFor(t, "the first Alertmanager", func() bool { return len(first.alerts()) == 1 })
	waitFor(t, "one alert queued for the one that is down", func() bool { return queueLength(stays.URL) == 1 })

	write(tokenFile, "two\n")
	write(cfgFile, "web:\n  bearer_token_file: "+tokenFile+"\nalertmanager:\n  urls: ["+second.URL+", "+stays.URL+"]\n  queue_capacity: 50\n")
	if code, body := reload("one"); code != http.StatusOK {
		t.Fatalf("reload: %d %s", code, body)
	}
	if code := send("one", "Old token"); code != http.StatusUnauthorized {
		t.Errorf("the old token still works after reload: %d", code)
	}
	if code := send("two", "After"); code != http.StatusAccepted {
		t.Fatalf("send with the new token: %d", code)
	}
	waitFor(t, "the second Alertmanager", func() bool { return len(second.alerts()) == 1 })
	if got := second.rules(); got[0] != "After" {
		t.Errorf("the second Alertmanager got %v", got)
	}
	if n := len(first.alerts()); n != 1 {
		t.Errorf("the removed Alertmanager got %d alerts, want 1 (before the reload)", n)
	}
	if got := queueLength(stays.URL); got != 2 {
		t.Errorf("the Alertmanager that stayed holds %v alerts, want 2: its queue must survive the reload", got)
	}
	if got := metricWith(t, a, "falco_am_bridge_alertmanager_queue_capacity", "alertmanager", stays.URL); got != 7 {
		t.Errorf("queue_capacity = %v, want 7: the flag wins over the file", got)
	}

	// Many reloads at once, from both triggers: one at a time.
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if code, body := reload("two"); code != http.StatusOK {
				t.Errorf("concurrent reload: %d %s", code, body)
			}
		})
		wg.Go(func() {
			if err := a.Reload(); err != nil {
				t.Errorf("concurrent Reload: %v", err)
			}
		})
	}
	wg.Wait()

	write(cfgFile, "alertmanager:\n  urls: [ftp://nowhere]\n  queu_capacity: 1\n")
	code, body := reload("two")
	if code != http.StatusInternalServerError || !strings.Contains(body, "queu_capacity") {
		t.Fatalf("broken config file: %d %s", code, body)
	}
	if got := metricValue(t, a, "falco_am_bridge_config_last_reload_successful"); got != 0 {
		t.Errorf("config_last_reload_successful = %v after a failed reload", got)
	}
	if code := send("two", "After failure"); code != http.StatusAccepted {
		t.Fatalf("send after a failed reload: %d", code)
	}
	waitFor(t, "delivery after a failed reload", func() bool { return len(second.alerts()) == 2 })
}

// TestReloadRestartOnly: a reload that changes settings built once at start
// (web.ui, sensors.silent_after) logs, for each, that it needs a restart,
// and the running bridge goes on as it was started; changed back, they
// need nothing.
func TestReloadRestartOnly(t *testing.T) {
	am := newFakeAM(t)
	file := func(ui bool, silentAfter string) settings {
		return settings{"web.ui": ui, "sensors.silent_after": silentAfter, "alertmanager.urls": []string{am.URL}}
	}
	r := startReloadable(t, file(true, "10m"), Options{})

	r.reload(t, file(false, "20m"))
	for _, key := range []string{"web.ui", "sensors.silent_after"} {
		if want := `level=WARN msg="configuration change needs a restart" key=` + key + "\n"; !strings.Contains(r.logs.String(), want) {
			t.Errorf("the log has no %q:\n%s", want, r.logs.String())
		}
	}
	resp, err := http.Get("http://" + r.Addr() + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /api/v1/status after the reload = %d, want 200: web.ui applies at the next start", resp.StatusCode)
	}

	// Back to what the bridge runs with: nothing to warn about.
	before := len(r.logs.String())
	r.reload(t, file(true, "10m"))
	if after := r.logs.String()[before:]; strings.Contains(after, "needs a restart") {
		t.Errorf("a reload back to the running settings warns:\n%s", after)
	}
}

// metricWith returns the value of the series of name whose label has value.
func metricWith(t *testing.T, a *App, name, label, value string) float64 {
	t.Helper()
	mfs, err := a.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					if m.GetGauge() != nil {
						return m.GetGauge().GetValue()
					}
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}
