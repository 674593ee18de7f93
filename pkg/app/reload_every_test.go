package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alertmanager"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/config"
)

// ctlAM is an Alertmanager whose answers a test sets: accept, fail with
// 503, or hold every request until the test ends. It counts requests,
// the alerts in each, those in flight at once, and keeps their headers.
type ctlAM struct {
	*httptest.Server
	mode     atomic.Value // "ok", "fail" or "hold"
	release  chan struct{}
	inFlight atomic.Int64
	peak     atomic.Int64
	mu       sync.Mutex
	sizes    []int // alerts per request, of the requests answered 200
	attempts int
	headers  []http.Header
}

func newCtlAM(t *testing.T, mode string) *ctlAM {
	am := &ctlAM{release: make(chan struct{})}
	am.mode.Store(mode)
	am.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := am.inFlight.Add(1)
		defer am.inFlight.Add(-1)
		for p := am.peak.Load(); n > p && !am.peak.CompareAndSwap(p, n); p = am.peak.Load() {
		}
		var batch []map[string]any
		err := json.NewDecoder(r.Body).Decode(&batch)
		am.mu.Lock()
		am.attempts++
		am.headers = append(am.headers, r.Header.Clone())
		am.mu.Unlock()
		switch am.mode.Load() {
		case "fail":
			http.Error(w, "not now", http.StatusServiceUnavailable)
			return
		case "hold":
			select {
			case <-am.release:
			case <-r.Context().Done():
			}
			http.Error(w, "not now", http.StatusServiceUnavailable)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		am.mu.Lock()
		am.sizes = append(am.sizes, len(batch))
		am.mu.Unlock()
	}))
	t.Cleanup(am.Close)
	return am
}

// stop lets every held request go; the test's cleanup calls it before
// the bridge stops.
func (am *ctlAM) stop() {
	am.mode.Store("fail")
	select {
	case <-am.release:
	default:
		close(am.release)
	}
}

func (am *ctlAM) counts() (attempts int, sizes []int, headers []http.Header) {
	am.mu.Lock()
	defer am.mu.Unlock()
	return am.attempts, append([]int(nil), am.sizes...), append([]http.Header(nil), am.headers...)
}

func (am *ctlAM) delivered() (n int) {
	_, sizes, _ := am.counts()
	for _, s := range sizes {
		n += s
	}
	return n
}

// settings is a configuration file as dotted keys (alertmanager.timeout)
// and their values.
type settings map[string]any

func (s settings) with(more settings) settings {
	out := settings{}
	for k, v := range s {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

func (s settings) write(t *testing.T, path string) {
	t.Helper()
	tree := map[string]any{}
	for key, v := range s {
		node := tree
		parts := strings.Split(key, ".")
		for _, p := range parts[:len(parts)-1] {
			next, ok := node[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				node[p] = next
			}
			node = next
		}
		node[parts[len(parts)-1]] = v
	}
	b, err := yaml.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// reloadable is a bridge started from a configuration file alone, so
// that a reload can change any setting of it.
type reloadable struct {
	*App
	file string
	logs *syncBuffer
	stop func() error // stops Run and returns what it returned
}

func startReloadable(t *testing.T, s settings, opts Options) *reloadable {
	t.Helper()
	r := &reloadable{file: filepath.Join(t.TempDir(), "bridge.yaml"), logs: &syncBuffer{}}
	s.with(settings{"web.listen_address": "127.0.0.1:0"}).write(t, r.file)
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	if err := fs.Parse([]string{"--config.file=" + r.file}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(fs)
	if err != nil {
		t.Fatal(err)
	}
	opts.LoadConfig = func() (*config.Config, error) { return config.Load(fs) }
	a, err := NewWithOptions(cfg, slog.New(slog.NewTextHandler(r.logs, nil)), opts)
	if err != nil {
		t.Fatal(err)
	}
	r.App = a
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, nil) }()
	var once sync.Once
	var runErr error
	r.stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, "the bridge to be up", func() bool {
		resp, err := http.Get("http://" + a.Addr() + "/-/healthy")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return r
}

// reload writes s, with the listen address the bridge runs on, and
// reloads.
func (r *reloadable) reload(t *testing.T, s settings) {
	t.Helper()
	r.reloadRaw(t, s.with(settings{"web.listen_address": "127.0.0.1:0"}))
}

// reloadRaw writes s as it is and reloads.
func (r *reloadable) reloadRaw(t *testing.T, s settings) {
	t.Helper()
	s.write(t, r.file)
	resp, err := http.Post("http://"+r.Addr()+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reload: %d\n%s", resp.StatusCode, r.logs.String())
	}
}

// send posts events named rules in one body, with token when not "".
func (r *reloadable) send(t *testing.T, token string, rules ...string) int {
	t.Helper()
	evs := make([]string, len(rules))
	for i, rule := range rules {
		evs[i] = ev(rule, "Warning")
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+r.Addr()+"/", strings.NewReader("["+strings.Join(evs, ",")+"]"))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func rules(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s %d", prefix, i)
	}
	return out
}

// countingResolver resolves every name to 127.0.0.1 and counts lookups.
type countingResolver struct{ lookups atomic.Int64 }

func (r *countingResolver) LookupIPAddr(context.Context, string) ([]net.IPAddr, error) {
	r.lookups.Add(1)
	return []net.IPAddr{{IP: net.IPv4(127, 0, 0, 1)}}, nil
}

func (r *countingResolver) LookupSRV(context.Context, string, string, string) (string, []*net.SRV, error) {
	return "", nil, fmt.Errorf("no SRV records here")
}

// TestReloadEveryOption: every setting that a reload applies is changed
// through POST /-/reload on a running bridge, and the bridge is seen to
// act on the new value; every setting that needs a restart is changed in
// turn, and the reload logs a warning naming its key. Each setting of
// the configuration is in one of the two tables.
func TestReloadEveryOption(t *testing.T) {
	type reloadCase struct {
		am            string // the mode of the Alertmanager the bridge sends to
		before, after settings
		resolver      alertmanager.Resolver
		check         func(t *testing.T, r *reloadable, am *ctlAM)
	}
	var second *ctlAM
	resolver := &countingResolver{}
	cases := map[string]reloadCase{
		"web.bearer_token_file": {
			am: "ok",
			after: settings{"web.bearer_token_file": func(t *testing.T) string {
				p := filepath.Join(t.TempDir(), "token")
				if err := os.WriteFile(p, []byte("s3cret\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			}},
			check: func(t *testing.T, r *reloadable, _ *ctlAM) {
				if code := r.send(t, "", "No token"); code != http.StatusUnauthorized {
					t.Errorf("without the token: %d, want 401", code)
				}
				if code := r.send(t, "s3cret", "Token"); code != http.StatusAccepted {
					t.Errorf("with the token: %d, want 202", code)
				}
			},
		},
		"alertmanager.urls": {
			am: "ok",
			after: settings{"alertmanager.urls": func(t *testing.T) []string {
				second = newCtlAM(t, "ok")
				return []string{second.URL}
			}},
			check: func(t *testing.T, r *reloadable, first *ctlAM) {
				r.send(t, "", "To the second")
				waitFor(t, "the alert at the new Alertmanager", func() bool { return second.delivered() == 1 })
				if n := first.delivered(); n != 0 {
					t.Errorf("the removed Alertmanager got %d alerts", n)
				}
			},
		},
		"alertmanager.timeout": {
			am:     "hold",
			before: settings{"alertmanager.timeout": "1h"},
			after:  settings{"alertmanager.timeout": "100ms"},
			check: func(t *testing.T, r *reloadable, _ *ctlAM) {
				r.send(t, "", "Held")
				waitFor(t, "a request given up after the new timeout", func() bool {
					return metricSum(t, r.App, "falco_am_bridge_alertmanager_requests_total", "outcome", "retryable_error") >= 1
				})
			},
		},
		"alertmanager.queue_capacity": {
			am:    "ok",
			after: settings{"alertmanager.queue_capacity": 123},
			check: func(t *testing.T, r *reloadable, am *ctlAM) {
				if got := metricWith(t, r.App, "falco_am_bridge_alertmanager_queue_capacity", "alertmanager", am.URL); got != 123 {
					t.Errorf("queue_capacity = %v, want 123", got)
				}
			},
		},
		"alertmanager.queue_max_bytes": {
			am:    "fail",
			after: settings{"alertmanager.queue_max_bytes": "4KiB"},
			check: func(t *testing.T, r *reloadable, am *ctlAM) {
				r.send(t, "", rules("Many", 50)...)
				waitFor(t, "alerts dropped past the new byte bound", func() bool {
					return metricSum(t, r.App, "falco_am_bridge_alertmanager_alerts_dropped_total", "reason", "queue_full", "alertmanager", am.URL) > 0
				})
			},
		},
		"alertmanager.batch_size": {
			am:    "ok",
			after: settings{"alertmanager.batch_size": 3},
			check: func(t *testing.T, r *reloadable, am *ctlAM) {
				r.send(t, "", rules("Batched", 10)...)
				waitFor(t, "10 alerts", func() bool { return am.delivered() == 10 })
				_, sizes, _ := am.counts()
				if len(sizes) < 4 || slices.Max(sizes) > 3 {
					t.Errorf("requests of %v alerts, want at most 3 each", sizes)
				}
			},
		},
		"alertmanager.max_requests_in_flight": {
			am:    "hold",
			after: settings{"alertmanager.max_requests_in_flight": 4, "alertmanager.batch_size": 1},
			check: func(t *testing.T, r *reloadable, am *ctlAM) {
				r.send(t, "", rules("Parallel", 10)...)
				waitFor(t, "4 requests in flight at once", func() bool { return am.inFlight.Load() == 4 })
				time.Sleep(200 * time.Millisecond) // none more may start
				if p := am.peak.Load(); p != 4 {
					t.Errorf("%d requests in flight at most, want 4", p)
				}
			},
		},
		"alertmanager.batch_wait": {
			am:    "ok",
			after: settings{"alertmanager.batch_wait": "1h", "alertmanager.batch_size": 5},
			check: func(t *testing.T, r *reloadable, am *ctlAM) {
				for _, rule := range rules("Waiting", 4) {
					r.send(t, "", rule)
				}
				waitFor(t, "4 alerts queued", func() bool {
					return metricWith(t, r.App, "falco_am_bridge_alertmanager_queue_length", "alertmanager", am.URL) == 4
				})
				r.send(t, "", "The fifth")
				waitFor(t, "5 alerts", func() bool { return am.delivered() == 5 })
				if _, sizes, _ := am.counts(); len(sizes) != 1 {
					t.Errorf("requests of %v alerts, want one of 5: the first four wait for a full batch", sizes)
				}
			},
		},
		"alertmanager.min_backoff": {
			am:    "fail",
			after: settings{"alertmanager.min_backoff": "1h", "alertmanager.max_backoff": "1h"},
			check: func(t *testing.T, r *reloadable, am *ctlAM) {
				r.send(t, "", "Backing off")
				waitFor(t, "a first attempt", func() bool { n, _, _ := am.counts(); return n >= 1 })
				time.Sleep(1500 * time.Millisecond) // the default would try again within it
				if n, _, _ := am.counts(); n != 1 {
					t.Errorf("%d attempts, want 1: the next waits an hour", n)
				}
			},
		},
		"alertmanager.max_backoff": {
			am:     "fail",
			before: settings{"alertmanager.min_backoff": "10ms", "alertmanager.max_backoff": "1h"},
			after:  settings{"alertmanager.min_backoff": "10ms", "alertmanager.max_backoff": "20ms"},
			check: func(t *testing.T, r *reloadable, am *ctlAM) {
				r.send(t, "", "Retried")
				// Doubling from 10ms to an hour, 30 attempts would take
				// years; capped at 20ms, under a second.
				waitFor(t, "30 attempts", func() bool { n, _, _ := am.counts(); return n >= 30 })
			},
		},
		"alertmanager.refresh_interval": {
			am:       "ok",
			resolver: resolver,
			before:   settings{"alertmanager.refresh_interval": "1h"},
			after:    settings{"alertmanager.refresh_interval": "20ms"},
			check: func(t *testing.T, r *reloadable, _ *ctlAM) {
				from := resolver.lookups.Load()
				waitFor(t, "lookups every 20ms", func() bool { return resolver.lookups.Load() >= from+10 })
			},
		},
		"alertmanager.drain_timeout": {
			am:     "hold",
			before: settings{"alertmanager.drain_timeout": "1h"},
			after:  settings{"alertmanager.drain_timeout": "100ms"},
			check: func(t *testing.T, r *reloadable, am *ctlAM) {
				r.send(t, "", "Undeliverable")
				waitFor(t, "the request held", func() bool { return am.inFlight.Load() == 1 })
				stopped := make(chan error, 1)
				go func() { stopped <- r.stop() }()
				waitFor(t, "shutdown after the new drain timeout", func() bool {
					select {
					case err := <-stopped:
						if err != nil {
							t.Errorf("Run: %v", err)
						}
						return true
					default:
						return false
					}
				})
			},
		},
		"alertmanager.http_config": {
			am:    "ok",
			after: settings{"alertmanager.http_config": map[string]any{"basic_auth": map[string]any{"username": "bridge", "password": "pw"}}},
			check: func(t *testing.T, r *reloadable, am *ctlAM) {
				r.send(t, "", "Authenticated")
				waitFor(t, "the alert", func() bool { return am.delivered() == 1 })
				_, _, headers := am.counts()
				req := &http.Request{Header: headers[len(headers)-1]}
				if u, p, ok := req.BasicAuth(); !ok || u != "bridge" || p != "pw" {
					t.Errorf("basic auth %q %q %v, want bridge pw", u, p, ok)
				}
			},
		},
		"mapping.file": {
			am:    "ok",
			after: settings{"mapping.file": func(t *testing.T) string { a, _ := filepath.Abs("testdata/pipeline-mapping.yaml"); return a }},
			check: func(t *testing.T, r *reloadable, am *ctlAM) {
				r.send(t, "", "Mapped anew")
				waitFor(t, "the alert", func() bool { return am.delivered() == 1 })
				alerts := r.statusAlertnames(t)
				if len(alerts) == 0 || alerts[0] != "node-1" {
					t.Errorf("alertnames %q, want node-1 first: the new mapping names alerts by host", alerts)
				}
			},
		},
	}

	webConfig := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(webConfig, []byte("http_server_config:\n  http2: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The restart-only settings, each with a value other than its
	// default and the key the warning names.
	restart := map[string]struct {
		value any
		warns string
	}{
		"web.listen_address":              {"127.0.0.1:1", ""},
		"web.config_file":                 {webConfig, ""},
		"web.max_request_bytes":           {"1MiB", ""},
		"web.max_request_bytes_in_flight": {"32MiB", ""},
		"web.max_events_per_request":      {7, ""},
		"web.read_header_timeout":         {"7s", ""},
		"web.read_timeout":                {"7s", ""},
		"web.write_timeout":               {"7s", ""},
		"web.idle_timeout":                {"7s", ""},
		"web.ui":                          {false, ""},
		"storage.path":                    {t.TempDir(), ""},
		"storage.fsync_interval":          {"7s", ""},
		"storage.max_bytes":               {"100MiB", ""},
		"storage.when_full":               {"refuse", ""},
		"sensors.max_tracked":             {7, ""},
		"sensors.silent_after":            {"7m", ""},
		"runtime.memory_limit":            {"100MiB", ""},
		"log.level":                       {"debug", ""},
		"log.format":                      {"json", ""},
		"source.nats.urls":                {[]string{"nats://127.0.0.1:1"}, "source.nats"},
		"source.nats.stream":              {"OTHER", "source.nats"},
		"source.nats.subject":             {"other.>", "source.nats"},
		"source.nats.consumer":            {"other", "source.nats"},
		"source.nats.credentials_file":    {"/nowhere.creds", "source.nats"},
		"source.nats.nkey_seed_file":      {"/nowhere.nk", "source.nats"},
		"source.nats.tls.ca_file":         {"/nowhere-ca.pem", "source.nats"},
		"source.nats.tls.cert_file":       {"/nowhere-cert.pem", "source.nats"},
		"source.nats.tls.key_file":        {"/nowhere-key.pem", "source.nats"},
		"source.nats.max_ack_pending":     {7, "source.nats"},
		"source.nats.ack_wait":            {"7s", "source.nats"},
	}

	for _, s := range config.Settings() {
		if s.Key == "" {
			continue // --config.file itself
		}
		_, reloads := cases[s.Key]
		_, restarts := restart[s.Key]
		if reloads == restarts {
			t.Errorf("%s: in %d of the two tables, want one: a reload either applies it or warns that it needs a restart", s.Key, map[bool]int{true: 2, false: 0}[reloads])
		}
	}

	for key, c := range cases {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			am := newCtlAM(t, c.am)
			url := am.URL
			if c.resolver != nil {
				url = "dns+" + strings.Replace(am.URL, "127.0.0.1", "alertmanager.test", 1)
			}
			// No drain at shutdown unless the case is about it: most
			// Alertmanagers here refuse everything.
			base := settings{"alertmanager.urls": []string{url}, "alertmanager.drain_timeout": "0s"}
			r := startReloadable(t, base.with(c.before), Options{Resolver: c.resolver})
			t.Cleanup(am.stop) // before the bridge stops: nothing held
			after := settings{}
			for k, v := range c.after {
				switch f := v.(type) {
				case func(*testing.T) string:
					v = f(t)
				case func(*testing.T) []string:
					v = f(t)
				}
				after[k] = v
			}
			r.reload(t, base.with(c.before).with(after))
			if strings.Contains(r.logs.String(), "needs a restart") {
				t.Errorf("%s: the reload warns of a restart:\n%s", key, r.logs.String())
			}
			c.check(t, r, am)
		})
	}

	t.Run("restart only", func(t *testing.T) {
		t.Parallel()
		am := newCtlAM(t, "ok")
		base := settings{"alertmanager.urls": []string{am.URL}, "source.nats.stream": "FALCO"}
		r := startReloadable(t, base, Options{})
		for key, c := range restart {
			warns := c.warns
			if warns == "" {
				warns = key
			}
			before := len(r.logs.String())
			// reload writes the address the bridge runs on, unless that
			// is what changes.
			changed := base.with(settings{"web.listen_address": "127.0.0.1:0"}).with(settings{key: c.value})
			r.reloadRaw(t, changed)
			logs := r.logs.String()[before:]
			if want := `msg="configuration change needs a restart" key=` + warns + "\n"; !strings.Contains(logs, want) {
				t.Errorf("%s: the reload logs no %q:\n%s", key, want, logs)
			}
			if n := strings.Count(logs, "needs a restart"); n != 1 {
				t.Errorf("%s: %d restart warnings, want 1:\n%s", key, n, logs)
			}
		}
	})
}

// statusAlertnames are the alertname labels of the alerts in the status
// ring, newest first.
func (r *reloadable) statusAlertnames(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, e := range r.ui.recent.List() {
		if e.Alert != nil {
			out = append(out, string(e.Alert.Labels["alertname"]))
		}
	}
	return out
}
