package app

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAlertmanagerClientConfig: the HTTP client to Alertmanager takes
// Prometheus's http_config, secrets from files, and never logs them.
func TestAlertmanagerClientConfig(t *testing.T) {
	const password = "am-pa55word"
	var mu sync.Mutex
	var got []string
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		mu.Lock()
		got = append(got, r.Header.Get("X-Scope-OrgID"))
		mu.Unlock()
		if !ok || user != "bridge" || pass != password {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
	}))
	t.Cleanup(am.Close)

	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets", "am-password"), []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "bridge.yaml")
	if err := os.WriteFile(cfgFile, []byte(`
alertmanager:
  urls: [`+am.URL+`]
  http_config:
    basic_auth:
      username: bridge
      password_file: secrets/am-password
    http_headers:
      X-Scope-OrgID:
        values: [security]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := loadConfig(t, "--config.file="+cfgFile, "--log.level=debug")
	var logs syncBuffer
	a, err := NewWithOptions(cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, nil) }()
	waitFor(t, "the bridge", func() bool {
		resp, err := http.Get("http://" + a.Addr() + "/-/ready")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	r := post(t, a, http.MethodPost, "application/json", "", []byte(ev("Auth", "Critical")))
	if r.code != http.StatusAccepted {
		t.Fatalf("%d %s", r.code, r.body)
	}
	waitFor(t, "delivery", func() bool { return metricValue(t, a, "falco_am_bridge_alertmanager_alerts_sent_total") == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "security" {
		t.Fatalf("headers seen: %v", got)
	}
	if strings.Contains(logs.String(), password) {
		t.Fatalf("the password is in the log:\n%s", logs.String())
	}
}
