package app

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
