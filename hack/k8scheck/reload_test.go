package k8scheck

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
)

// TestConfigMapMappingReloads: the mapping ConfigMap as kubelet lays it out
// (mapping.yaml -> ..data/mapping.yaml, ..data -> a timestamped directory,
// updated by swapping the ..data link), SIGHUP as the chart's reloader
// sends it: the running bridge takes the new mapping, refuses a broken one
// and keeps the last good one.
func TestConfigMapMappingReloads(t *testing.T) {
	bridge := harness.Binary(t, "BRIDGE_BIN")
	helm := harness.Binary(t, "HELM_BIN")
	original := []byte(configMapKey(t, decode(t, run(t, helm, "template", release, chartDir, "--namespace", namespace)), "mapping.yaml"))

	dir := t.TempDir()
	publish := func(version string, mapping []byte) {
		t.Helper()
		v := filepath.Join(dir, "..2026_01_01_00_00_0"+version)
		if err := os.Mkdir(v, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(v, "mapping.yaml"), mapping, 0o644); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(filepath.Base(v), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	publish("1", original)
	if err := os.Symlink("..data/mapping.yaml", filepath.Join(dir, "mapping.yaml")); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var received []map[string]string // labels of every alert posted
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var alerts []struct {
			Labels map[string]string `json:"labels"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &alerts); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, a := range alerts {
			received = append(received, a.Labels)
		}
		mu.Unlock()
	}))
	defer am.Close()

	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bridge, "--web.listen-address="+addr, "--alertmanager.url="+am.URL,
		"--alertmanager.batch-wait=0s", "--mapping.file="+filepath.Join(dir, "mapping.yaml"))
	p := harness.StartT(t, cmd)
	base := "http://" + addr
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.WaitReady(ctx, base+"/-/ready"); err != nil {
		t.Fatal(err)
	}

	// send posts an event of rule and returns the labels of its alert.
	send := func(rule string) map[string]string {
		t.Helper()
		ev := `{"output":"x","priority":"Critical","rule":"` + rule + `","time":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","hostname":"node-a"}`
		resp, err := http.Post(base+"/", "application/json", strings.NewReader(ev))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /: %s", resp.Status)
		}
		for ctx.Err() == nil {
			mu.Lock()
			for _, l := range received {
				if l["falco_rule"] == rule {
					mu.Unlock()
					return l
				}
			}
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("no alert for %s reached the Alertmanager", rule)
		return nil
	}
	// reload sends SIGHUP and waits until the bridge has tried the mapping.
	reload := func() (ok bool) {
		t.Helper()
		last, _ := harness.Metric(ctx, base+"/metrics", "falco_am_bridge_config_last_reload_success_timestamp_seconds")
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		for ctx.Err() == nil {
			good, _ := harness.Metric(ctx, base+"/metrics", "falco_am_bridge_config_last_reload_successful")
			ts, _ := harness.Metric(ctx, base+"/metrics", "falco_am_bridge_config_last_reload_success_timestamp_seconds")
			if good == 1 && ts > last {
				return true
			}
			if good == 0 {
				return false
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("the bridge did not reload")
		return false
	}

	if l := send("Rule one"); l["team"] != "" {
		t.Fatalf("the shipped mapping has no team label, got %v", l)
	}
	edited := bytes.Replace(original, []byte("\nstatic_labels: {}\n"), []byte("\nstatic_labels:\n  team: security\n"), 1)
	if bytes.Equal(edited, original) {
		t.Fatal("the shipped mapping has no line static_labels: {} to change")
	}
	publish("2", edited)
	if !reload() {
		t.Fatalf("the edited mapping was refused:\n%s", p.Output())
	}
	if l := send("Rule two"); l["team"] != "security" {
		t.Errorf("after the ConfigMap changed, alerts are %v, want team=security", l)
	}

	publish("3", bytes.Replace(edited, []byte("\nmin_priority: debug\n"), []byte("\nmin_priority: sometimes\n"), 1))
	if reload() {
		t.Fatal("a broken mapping was taken")
	}
	if l := send("Rule three"); l["team"] != "security" {
		t.Errorf("after a broken mapping, alerts are %v: the last good mapping must stay", l)
	}
}
