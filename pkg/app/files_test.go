package app

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	runtimemetrics "runtime/metrics"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/config"
)

// allocated returns the bytes allocated on the heap since the start.
func allocated() uint64 {
	s := []runtimemetrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	runtimemetrics.Read(s)
	return s[0].Value.Uint64()
}

// TestFilesWithoutEndRefusedAtStart: a mapping, bearer token or web
// configuration file without end (/dev/zero) stops the start with an
// error naming the setting, the file and the limit, after reading little
// more than the limit.
func TestFilesWithoutEndRefusedAtStart(t *testing.T) {
	for _, tc := range []struct {
		flag, want string
		limit      uint64
	}{
		{"--mapping.file", "mapping.file: /dev/zero: larger than 16 MiB", config.MaxMappingFileBytes},
		{"--web.bearer-token-file", "web.bearer_token_file: /dev/zero: larger than 64 KiB", config.MaxTokenFileBytes},
		{"--web.config.file", "web.config_file: /dev/zero: larger than 1 MiB", config.MaxWebConfigFileBytes},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			cfg := loadConfig(t, tc.flag+"=/dev/zero")
			before := allocated()
			a, err := New(cfg, slog.New(slog.DiscardHandler))
			used := allocated() - before
			if err == nil {
				a.abort()
				t.Fatal("the bridge started")
			}
			if err.Error() != tc.want {
				t.Fatalf("error %q, want %q", err, tc.want)
			}
			if bound := 4*tc.limit + 16<<20; used > bound {
				t.Errorf("starting allocated %d MiB, more than %d MiB", used>>20, bound>>20)
			}
		})
	}
}

// TestReloadRefusesFilesWithoutEnd: when the configuration, mapping or
// token file becomes a link to /dev/zero, a reload fails at once with the
// reason and everything keeps running as it was: the old token is asked
// for and the old mapping makes the alerts.
func TestReloadRefusesFilesWithoutEnd(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "bridge.yaml")
	mappingFile := filepath.Join(dir, "mapping.yaml")
	tokenFile := filepath.Join(dir, "token")
	am := newFakeAM(t)
	write := func(name, content string) {
		t.Helper()
		_ = os.Remove(name)
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	toZero := func(name string) {
		t.Helper()
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/dev/zero", name); err != nil {
			t.Fatal(err)
		}
	}
	cfgContent := "web:\n  bearer_token_file: " + tokenFile + "\nmapping:\n  file: " + mappingFile + "\nalertmanager:\n  urls: [" + am.URL + "]\n"
	mappingContent := "labels:\n  alertname: '{{ camelCase .Rule }}'\n  version: one\n"
	write(cfgFile, cfgContent)
	write(mappingFile, mappingContent)
	write(tokenFile, "s3cret\n")

	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	if err := fs.Parse([]string{"--web.listen-address=127.0.0.1:0", "--alertmanager.batch-wait=0s", "--config.file=" + cfgFile}); err != nil {
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
	call := func(path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr()+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	sent := 0
	for _, tc := range []struct {
		file, want string
		restore    func()
	}{
		{cfgFile, "config file: " + cfgFile + ": larger than 1 MiB", func() { write(cfgFile, cfgContent) }},
		{mappingFile, "mapping.file: " + mappingFile + ": larger than 16 MiB", func() { write(mappingFile, mappingContent) }},
		{tokenFile, "web.bearer_token_file: " + tokenFile + ": larger than 64 KiB", func() { write(tokenFile, "s3cret\n") }},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			toZero(tc.file)
			defer tc.restore()
			before := allocated()
			code, body := call("/-/reload", "")
			if code != http.StatusInternalServerError || !strings.Contains(body, tc.want) {
				t.Fatalf("reload: %d %s; want 500 with %q", code, body, tc.want)
			}
			if used := allocated() - before; used > 128<<20 {
				t.Errorf("the reload allocated %d MiB", used>>20)
			}
			if got := metricValue(t, a, "falco_am_bridge_config_last_reload_successful"); got != 0 {
				t.Errorf("config_last_reload_successful = %v after a failed reload", got)
			}
			if code, body := call("/", ev("Still running "+filepath.Base(tc.file), "Warning")); code != http.StatusAccepted {
				t.Fatalf("event after the failed reload: %d %s", code, body)
			}
			sent++
			waitFor(t, "delivery", func() bool { return len(am.alerts()) == sent })
			if v := am.alerts()[sent-1].Labels["version"]; v != "one" {
				t.Fatalf("the failed reload changed the mapping: version %q", v)
			}
		})
	}
}
