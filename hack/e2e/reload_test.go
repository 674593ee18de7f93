package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
)

// TestReloadSwitchesAlertmanager: with alertmanager.urls in the
// configuration file, SIGHUP re-reads it. New alerts go to the new
// Alertmanager, and the alerts the old one's queue held (it is down) are
// handed to the new one rather than lost. A broken file keeps the running
// configuration and says so in config_last_reload_successful.
//
// Not parallel: it stops an Alertmanager and starts others, and a port
// one test frees can be taken by another test's Alertmanager while a
// parallel test waits to restart its own there (TestAlertmanagerOutage
// then delivers to the wrong one). Sequential tests run before the
// parallel ones.
func TestReloadSwitchesAlertmanager(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	amBin := harness.Binary(t, "ALERTMANAGER_BIN")
	dir := t.TempDir()
	amCfg := amConfig(t, dir)
	old := harness.StartAlertmanager(ctx, t, harness.AlertmanagerOptions{Bin: amBin, ConfigFile: amCfg, DataDir: dir})
	next := harness.StartAlertmanager(ctx, t, harness.AlertmanagerOptions{Bin: amBin, ConfigFile: amCfg, DataDir: dir})

	cfgFile := filepath.Join(dir, "bridge.yaml")
	writeConfig := func(content string) {
		t.Helper()
		if err := os.WriteFile(cfgFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("alertmanager:\n  urls: [" + old.URL + "]\n  max_backoff: 1s\n")
	bridge := harness.StartBridge(ctx, t, harness.BridgeOptions{
		Bin: harness.BridgeBinary(t), Args: []string{"--config.file=" + cfgFile},
	})
	s := &stack{bridge: bridge}
	s.send(t, distinctEvent(0))
	waitUntil(ctx, t, "the first alert in the old Alertmanager", func() bool { return alertCount(ctx, t, old.URL) == 1 })

	// The old one goes down with alerts queued for it.
	if err := old.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		s.send(t, distinctEvent(i))
	}
	waitUntil(ctx, t, "5 alerts queued for the old Alertmanager", func() bool {
		return metric(ctx, t, bridge, "falco_am_bridge_alertmanager_queue_length", "alertmanager="+old.URL) == 5
	})

	reload := func() {
		t.Helper()
		before := metric(ctx, t, bridge, "falco_am_bridge_config_last_reload_success_timestamp_seconds")
		if err := bridge.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitUntil(ctx, t, "the reload to be done", func() bool {
			return strings.Contains(bridge.Output(), "reload") &&
				(metric(ctx, t, bridge, "falco_am_bridge_config_last_reload_successful") == 0 ||
					metric(ctx, t, bridge, "falco_am_bridge_config_last_reload_success_timestamp_seconds") > before)
		})
	}
	// The timestamp has a resolution of a second.
	time.Sleep(1100 * time.Millisecond)
	writeConfig("alertmanager:\n  urls: [" + next.URL + "]\n  max_backoff: 1s\n  queue_capacity: 500\n")
	reload()
	if got := metric(ctx, t, bridge, "falco_am_bridge_config_last_reload_successful"); got != 1 {
		t.Fatalf("config_last_reload_successful = %v", got)
	}
	for i := 6; i <= 10; i++ {
		s.send(t, distinctEvent(i))
	}
	waitUntil(ctx, t, "the 5 new and the 5 handed-over alerts in the new Alertmanager", func() bool {
		return alertCount(ctx, t, next.URL) == 10
	})
	if got := metric(ctx, t, bridge, "falco_am_bridge_alertmanager_queue_capacity", "alertmanager="+next.URL); got != 500 {
		t.Errorf("queue_capacity = %v after reload, want 500", got)
	}

	// A broken file: the running configuration stays.
	writeConfig("alertmanager:\n  urls: [ftp://nowhere]\n")
	reload()
	if got := metric(ctx, t, bridge, "falco_am_bridge_config_last_reload_successful"); got != 0 {
		t.Fatalf("config_last_reload_successful = %v after a broken file", got)
	}
	s.send(t, distinctEvent(11))
	waitUntil(ctx, t, "the alert after a failed reload in the new Alertmanager", func() bool {
		return alertCount(ctx, t, next.URL) == 11
	})
}
