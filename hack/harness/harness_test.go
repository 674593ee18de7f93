package harness_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
)

// The test binary doubles as the child process when HARNESS_CHILD is set.
func TestMain(m *testing.M) {
	switch os.Getenv("HARNESS_CHILD") {
	case "":
		os.Exit(m.Run())
	case "serve":
		fmt.Println("child starting")
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		mux := http.NewServeMux()
		mux.HandleFunc("/-/ready", func(http.ResponseWriter, *http.Request) {})
		srv := &http.Server{Addr: os.Getenv("HARNESS_ADDR"), Handler: mux, ReadHeaderTimeout: time.Second}
		go func() { _ = srv.ListenAndServe() }()
		<-sig
		fmt.Fprintln(os.Stderr, "child got SIGTERM")
		os.Exit(0)
	case "fail":
		fmt.Fprintln(os.Stderr, "child failing")
		os.Exit(3)
	}
}

func child(t *testing.T, mode, addr string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HARNESS_CHILD="+mode, "HARNESS_ADDR="+addr)
	return cmd
}

func TestStartWaitStop(t *testing.T) {
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	p := harness.StartT(t, child(t, "serve", addr))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := p.WaitReady(ctx, "http://"+addr+"/-/ready"); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	select {
	case <-p.Exited():
	default:
		t.Error("Exited not closed after Stop")
	}
	if out := p.Output(); !strings.Contains(out, "child starting") || !strings.Contains(out, "child got SIGTERM") {
		t.Errorf("Output = %q", out)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestWaitReadyGivesUpWhenTheProcessExits(t *testing.T) {
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	p, err := harness.Start(child(t, "fail", addr))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err = p.WaitReady(ctx, "http://"+addr+"/-/ready")
	if err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("WaitReady = %v, want an error with the exit status", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("WaitReady took %s after the process exited", time.Since(start))
	}
	if err := p.Stop(); err == nil || !strings.Contains(err.Error(), "exited before it was stopped") {
		t.Errorf("Stop = %v, want the early exit reported", err)
	}
	if !strings.Contains(p.Output(), "child failing") {
		t.Errorf("Output = %q", p.Output())
	}
}

func TestWaitReady(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/-/ready", func(http.ResponseWriter, *http.Request) {})
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: time.Second}
	go func() {
		time.Sleep(200 * time.Millisecond) // not listening yet at first
		_ = srv.ListenAndServe()
	}()
	t.Cleanup(func() { _ = srv.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := harness.WaitReady(ctx, "http://"+addr+"/-/ready"); err != nil {
		t.Fatal(err)
	}

	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	err = harness.WaitReady(short, "http://"+addr+"/other")
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("WaitReady on a 404 = %v, want a not-ready error naming the status", err)
	}
}

func TestStartRefusesOutputWriters(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Stdout = os.Stdout
	if _, err := harness.Start(cmd); err == nil {
		t.Error("Start accepted a command with Stdout set")
	}
}

// fakeTB records what Binary does instead of ending the test.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = fmt.Sprintf(format, args...)
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
}

func TestBinary(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	notExec := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, env, value, required string
		wantPath                   string
		wantSkip, wantFail         string
	}{
		{name: "found", value: exe, wantPath: exe},
		{name: "unset", wantSkip: "HARNESS_TEST_BIN is not set; run `make test`"},
		{name: "unset required", required: "1", wantFail: "HARNESS_TEST_BIN is not set; run `make test`, which installs the binary and sets it (E2E_REQUIRED=1)"},
		{name: "missing file", value: "/nonexistent/amtool", wantSkip: "no such file or directory"},
		{name: "not executable", value: notExec, required: "1", wantFail: "is not an executable file"},
		{name: "missing chromium", env: "CHROMIUM_BIN", value: "/nonexistent/chromium", required: "1",
			wantFail: "CHROMIUM_BIN=/nonexistent/chromium: stat /nonexistent/chromium: no such file or directory; run `make deb-tools` (apt-get install chromium), or `make test`, which runs it (E2E_REQUIRED=1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			if env == "" {
				env = "HARNESS_TEST_BIN"
			}
			t.Setenv(env, tt.value)
			t.Setenv(harness.E2ERequiredEnv, tt.required)
			f := &fakeTB{}
			got := harness.Binary(f, env)
			if got != tt.wantPath {
				t.Errorf("path = %q, want %q", got, tt.wantPath)
			}
			if tt.wantSkip == "" && f.skipped != "" || !strings.Contains(f.skipped, tt.wantSkip) {
				t.Errorf("skip message = %q, want it to contain %q", f.skipped, tt.wantSkip)
			}
			if tt.wantFail == "" && f.failed != "" || !strings.Contains(f.failed, tt.wantFail) {
				t.Errorf("fail message = %q, want it to contain %q", f.failed, tt.wantFail)
			}
		})
	}
}

func TestWriteAlertmanagerOverlay(t *testing.T) {
	src := filepath.Join("..", "..", "alertmanager", "alertmanager.yml")
	dir := t.TempDir()
	path, err := harness.WriteAlertmanagerOverlay(src, dir, harness.AlertmanagerOverlay{
		GroupWait:           time.Second,
		GroupInterval:       1500 * time.Millisecond,
		RepeatInterval:      time.Hour,
		SlackAPIURL:         "http://127.0.0.1:1/slack/x",
		PagerDutyRoutingKey: "key",
		PagerDutyURL:        "http://127.0.0.1:1/pagerduty/v2/enqueue",
	})
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, "alertmanager.yml") {
		t.Errorf("path = %q", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Templates []string `yaml:"templates"`
		Route     struct {
			GroupWait      string `yaml:"group_wait"`
			GroupInterval  string `yaml:"group_interval"`
			RepeatInterval string `yaml:"repeat_interval"`
		} `yaml:"route"`
		Receivers []struct {
			SlackConfigs []map[string]any `yaml:"slack_configs"`
			PagerDuty    []map[string]any `yaml:"pagerduty_configs"`
		} `yaml:"receivers"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if r := cfg.Route; r.GroupWait != "1s" || r.GroupInterval != "1500ms" || r.RepeatInterval != "1h" {
		t.Errorf("route timings = %+v", r)
	}
	for _, tp := range cfg.Templates {
		if !filepath.IsAbs(tp) {
			t.Errorf("template path %q is not absolute", tp)
		}
		if m, _ := filepath.Glob(tp); len(m) == 0 {
			t.Errorf("template path %q matches nothing", tp)
		}
	}
	var slack, pagerDuty int
	for _, r := range cfg.Receivers {
		for _, c := range r.SlackConfigs {
			slack++
			if c["api_url_file"] != filepath.Join(dir, "slack-api-url") {
				t.Errorf("slack api_url_file = %v", c["api_url_file"])
			}
		}
		for _, c := range r.PagerDuty {
			pagerDuty++
			if c["routing_key_file"] != filepath.Join(dir, "pagerduty-routing-key") || c["url"] != "http://127.0.0.1:1/pagerduty/v2/enqueue" {
				t.Errorf("pagerduty config = %v", c)
			}
		}
	}
	if slack == 0 || pagerDuty == 0 {
		t.Errorf("%d Slack and %d PagerDuty configs", slack, pagerDuty)
	}
	for file, want := range map[string]string{"slack-api-url": "http://127.0.0.1:1/slack/x\n", "pagerduty-routing-key": "key\n"} {
		got, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q (err %v), want %q", file, got, err, want)
		}
	}
}

// TestFreeAddrBelowEphemeral: the addresses FreeAddr gives are free, and
// below the ports that port-0 listeners and outgoing connections take.
func TestFreeAddrBelowEphemeral(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Skipf("no ephemeral port range to compare with: %v", err)
	}
	var low int
	if _, err := fmt.Sscan(string(b), &low); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		addr, err := harness.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(addr)
		if p, _ := strconv.Atoi(port); low > 10000 && (p < 10000 || p >= low) {
			t.Errorf("%s: port outside [10000, %d)", addr, low)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s is not free: %v", addr, err)
		}
		ln.Close()
	}
}
