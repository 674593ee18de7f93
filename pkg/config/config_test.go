package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/spf13/pflag"
)

func load(t *testing.T, args ...string) (*Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return Load(fs)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	c, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	if c.Web.ListenAddress != ":2802" || len(c.Alertmanager.URLs) != 1 || c.Alertmanager.URLs[0] != "http://127.0.0.1:9093" ||
		c.Alertmanager.QueueCapacity != 10000 || c.Alertmanager.BatchSize != 2048 || c.Alertmanager.Timeout != model.Duration(10*time.Second) ||
		c.Web.MaxRequestBytes != 4<<20 || c.Log.Level != "info" || c.Log.Format != "logfmt" || c.Mapping.File != "" || c.Storage.Path != "" {
		t.Fatalf("defaults: %+v", c)
	}
	if len(c.Alertmanager.Targets) != 1 || c.Alertmanager.Targets[0].Discovery != Static || c.Alertmanager.Targets[0].URL.Host != "127.0.0.1:9093" {
		t.Fatalf("targets: %+v", c.Alertmanager.Targets)
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "c.yaml", `
web:
  listen_address: "127.0.0.1:1111"
alertmanager:
  urls: [http://file-a:9093, http://file-b:9093]
  timeout: 3s
  batch_size: 10
log:
  level: warn
`)
	t.Setenv("FALCO_AM_BRIDGE_ALERTMANAGER_TIMEOUT", "4s")
	t.Setenv("FALCO_AM_BRIDGE_LOG_LEVEL", "error")
	c, err := load(t, "--config.file="+file, "--log.level=debug")
	if err != nil {
		t.Fatal(err)
	}
	if c.Web.ListenAddress != "127.0.0.1:1111" {
		t.Errorf("file value lost: %q", c.Web.ListenAddress)
	}
	if c.Alertmanager.Timeout != model.Duration(4*time.Second) {
		t.Errorf("env should win over the file: %v", c.Alertmanager.Timeout)
	}
	if c.Log.Level != "debug" {
		t.Errorf("flag should win over env: %q", c.Log.Level)
	}
	if c.Alertmanager.BatchSize != 10 || strings.Join(c.Alertmanager.URLs, ",") != "http://file-a:9093,http://file-b:9093" {
		t.Errorf("file values: %d %v", c.Alertmanager.BatchSize, c.Alertmanager.URLs)
	}
	if c.File != file {
		t.Errorf("File = %q", c.File)
	}
}

func TestEnvironment(t *testing.T) {
	file := writeFile(t, "c.yaml", "web:\n  max_request_bytes: 1MiB\n")
	t.Setenv("FALCO_AM_BRIDGE_CONFIG_FILE", file)
	t.Setenv("FALCO_AM_BRIDGE_ALERTMANAGER_URLS", "http://a:9093, http://b:9093")
	t.Setenv("FALCO_AM_BRIDGE_WEB_LISTEN_ADDRESS", "127.0.0.1:3333")
	c, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Alertmanager.URLs, ",") != "http://a:9093,http://b:9093" || c.Web.ListenAddress != "127.0.0.1:3333" || c.Web.MaxRequestBytes != 1<<20 {
		t.Fatalf("%+v %+v", c.Alertmanager.URLs, c.Web)
	}
}

func TestRepeatedURLFlag(t *testing.T) {
	c, err := load(t, "--alertmanager.url=http://a:9093", "--alertmanager.url=https://b:9093/prefix", "--alertmanager.url=dns+http://am-headless:9093", "--alertmanager.url=dnssrv+http://_web._tcp.am")
	if err != nil {
		t.Fatal(err)
	}
	want := []Discovery{Static, Static, DNSA, DNSSRV}
	if len(c.Alertmanager.Targets) != len(want) {
		t.Fatalf("targets %+v", c.Alertmanager.Targets)
	}
	for i, d := range want {
		if c.Alertmanager.Targets[i].Discovery != d {
			t.Errorf("target %d: discovery %v, want %v", i, c.Alertmanager.Targets[i].Discovery, d)
		}
	}
	if c.Alertmanager.Targets[3].URL.Host != "_web._tcp.am" || c.Alertmanager.Targets[1].URL.Path != "/prefix" {
		t.Errorf("targets %+v", c.Alertmanager.Targets)
	}
}

func TestErrorsNameKeyAndValue(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		file string
		want []string
	}{
		{"not http", []string{"--alertmanager.url=http://ok:9093", "--alertmanager.url=ftp://x"}, "", []string{`alertmanager.urls: [1]: "ftp://x" is not an http(s) URL`}},
		{"no host", []string{"--alertmanager.url=http://"}, "", []string{`alertmanager.urls: [0]: "http://" has no host`}},
		{"credentials in url", []string{"--alertmanager.url=http://u:secret@am:9093"}, "", []string{"alertmanager.urls: [0]:", "basic_auth"}},
		{"dns without port", []string{"--alertmanager.url=dns+http://am"}, "", []string{"dns+ needs a port"}},
		{"srv with port", []string{"--alertmanager.url=dnssrv+http://_web._tcp.am:9093"}, "", []string{"remove the port"}},
		{"listen address", []string{"--web.listen-address=2802"}, "", []string{`web.listen_address: "2802" is not host:port`}},
		{"log level", []string{"--log.level=verbose"}, "", []string{`log.level: "verbose" is not one of debug, info, warn, error`}},
		{"log format", []string{"--log.format=xml"}, "", []string{`log.format: "xml" is not one of logfmt, json`}},
		{"duration", []string{"--alertmanager.timeout=soon"}, "", []string{`alertmanager.timeout: "soon" is not a duration`}},
		{"zero duration", []string{"--alertmanager.timeout=0s"}, "", []string{`alertmanager.timeout: 0s must be greater than 0`}},
		{"size", []string{"--web.max-request-bytes=big"}, "", []string{`web.max_request_bytes: "big" is not a size`}},
		{"memory limit", []string{"--runtime.memory-limit=half"}, "", []string{`runtime.memory_limit: "half" is not a size (like 4MiB or 1048576)`}},
		{"int", []string{"--alertmanager.queue-capacity=lots"}, "", []string{`alertmanager.queue_capacity: "lots" is not a whole number`}},
		{"negative int", []string{"--alertmanager.batch-size=-1"}, "", []string{`alertmanager.batch_size: -1 must be greater than 0`}},
		{"backoffs", []string{"--alertmanager.min-backoff=10s", "--alertmanager.max-backoff=1s"}, "", []string{"alertmanager.max_backoff: 1s is shorter than alertmanager.min_backoff (10s)"}},
		{"bodies in flight below one body", []string{"--web.max-request-bytes=8MiB", "--web.max-request-bytes-in-flight=4MiB"}, "", []string{"web.max_request_bytes_in_flight: 4194304 is less than web.max_request_bytes (8388608)"}},
		{"unknown key", nil, "web:\n  listen_adress: \":1\"\n", []string{`unknown key "web.listen_adress"`}}, //nolint:misspell // the typo is the test
		{"unknown section", nil, "alertmanagers:\n  urls: []\n", []string{`unknown key "alertmanagers"`}},
		{"wrong type in file", nil, "alertmanager:\n  batch_size: [1]\n", []string{"alertmanager.batch_size:"}},
		{"url list item", nil, "alertmanager:\n  urls: [http://a:1, 5]\n", []string{`alertmanager.urls: [1]: "5" is not an http(s) URL`}},
		{"url list of lists", nil, "alertmanager:\n  urls: [[http://a:1]]\n", []string{"line 2: alertmanager.urls: [0]: expected a string, got a list"}},
		{"section not a mapping", nil, "web: 5\n", []string{"line 1: web: expected a mapping of settings, got 5"}},
		{"mapping for a number", nil, "alertmanager:\n  batch_size: {a: 1}\n", []string{"line 2: alertmanager.batch_size: expected a whole number, got a mapping"}},
		{"http_config unknown field", nil, "alertmanager:\n  http_config:\n    basic_aut: {}\n", []string{`line 3: unknown key "alertmanager.http_config.basic_aut"; did you mean "alertmanager.http_config.basic_auth"?`}},
		{"http_config invalid", nil, "alertmanager:\n  http_config:\n    bearer_token: a\n    basic_auth: {username: u, password: p}\n", []string{"alertmanager.http_config:", "at most one of"}},
		{"nats url scheme", []string{"--source.nats.url=http://n:4222", "--source.nats.stream=FALCO"}, "", []string{`source.nats.urls: [0]: "http://n:4222" is not a nats://`}},
		{"nats url credentials", []string{"--source.nats.url=nats://u:pw@n:4222", "--source.nats.stream=FALCO"}, "", []string{"source.nats.urls: [0]:", "credentials_file"}},
		{"nats without stream", []string{"--source.nats.url=nats://n:4222"}, "", []string{"source.nats.stream: a stream name is needed"}},
		{"nats stream name", []string{"--source.nats.url=nats://n:4222", "--source.nats.stream=falco.events"}, "", []string{`source.nats.stream: "falco.events" is not a NATS name`}},
		{"nats subject", []string{"--source.nats.url=nats://n:4222", "--source.nats.stream=F", "--source.nats.subject=falco.>.x"}, "", []string{`source.nats.subject: "falco.>.x" is not a NATS subject`}},
		{"nats two credentials", []string{"--source.nats.url=nats://n:4222", "--source.nats.stream=F", "--source.nats.credentials-file=a", "--source.nats.nkey-seed-file=b"}, "", []string{"source.nats.nkey_seed_file: set at most one"}},
		{"nats cert without key", []string{"--source.nats.url=nats://n:4222", "--source.nats.stream=F", "--source.nats.tls.cert-file=c"}, "", []string{"source.nats.tls.cert_file: a client certificate needs both"}},
		{"nats ack pending over queue", []string{"--source.nats.url=nats://n:4222", "--source.nats.stream=F", "--source.nats.max-ack-pending=20000"}, "", []string{"source.nats.max_ack_pending: 20000 is more than alertmanager.queue_capacity (10000)"}},
		{"nats unknown nested key", nil, "source:\n  nats:\n    streem: F\n", []string{`unknown key "source.nats.streem"`}},
		{"every problem at once", []string{"--log.level=x", "--alertmanager.timeout=y"}, "", []string{"log.level", "alertmanager.timeout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append(args, "--config.file="+writeFile(t, "c.yaml", tc.file))
			}
			_, err := load(t, args...)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestNATSSource(t *testing.T) {
	c, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	if c.Source.NATS.Enabled() || c.Source.NATS.Subject != "falco.>" || c.Source.NATS.Consumer != "falco-am-bridge" || c.Source.NATS.MaxAckPending != 1000 {
		t.Fatalf("defaults: %+v", c.Source.NATS)
	}
	file := writeFile(t, "c.yaml", `
source:
  nats:
    urls: [nats://n1:4222, nats://n2:4222, nats://n3:4222]
    stream: FALCO
    consumer: bridges
    tls:
      ca_file: /etc/nats/ca.pem
    ack_wait: 10s
storage:
  path: /var/lib/falco-am-bridge
`)
	c, err = load(t, "--config.file="+file, "--source.nats.max-ack-pending=50000")
	if err != nil {
		t.Fatal(err)
	}
	n := c.Source.NATS
	if !n.Enabled() || len(n.URLs) != 3 || n.Stream != "FALCO" || n.Consumer != "bridges" || n.TLS.CAFile != "/etc/nats/ca.pem" ||
		n.AckWait != model.Duration(10*time.Second) || n.MaxAckPending != 50000 {
		t.Fatalf("%+v", n)
	}
}

func TestMissingConfigFile(t *testing.T) {
	_, err := load(t, "--config.file=/nonexistent/falco-am-bridge.yaml")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/falco-am-bridge.yaml") {
		t.Fatalf("error %v", err)
	}
}

func TestHTTPConfigFilesAreRelativeToTheConfigFile(t *testing.T) {
	file := writeFile(t, "c.yaml", "alertmanager:\n  http_config:\n    basic_auth:\n      username: bridge\n      password_file: secrets/am-password\n")
	c, err := load(t, "--config.file="+file)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(filepath.Dir(file), "secrets", "am-password")
	if got := c.Alertmanager.HTTPConfig.BasicAuth.PasswordFile; got != want {
		t.Fatalf("password_file = %q, want %q", got, want)
	}
}

func TestShippedConfigFiles(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*config*.yaml")
	if len(files) == 0 {
		t.Fatal("no example configuration file found")
	}
	for _, f := range files {
		if _, err := load(t, "--config.file="+f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestSettingsCoverEveryFlag(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	RegisterFlags(fs)
	documented := map[string]bool{}
	for _, s := range Settings() {
		documented[s.Flag] = true
		if s.Help == "" {
			t.Errorf("%s has no help", s.Flag+s.Key)
		}
		if s.Key != "" && s.Flag != "" && s.Env != envName(s.Key) {
			t.Errorf("%s: env %s", s.Key, s.Env)
		}
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if !documented[f.Name] {
			t.Errorf("flag --%s is not in Settings()", f.Name)
		}
	})
}

// TestREADMEDocumentsEverySetting keeps the README's reference in step
// with the code.
func TestREADMEDocumentsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Settings() {
		if s.Flag != "" && !strings.Contains(string(readme), "`--"+s.Flag+"`") && !strings.Contains(string(readme), "--"+s.Flag+"`") {
			t.Errorf("README.md does not document --%s", s.Flag)
		}
		if s.Key != "" && !strings.Contains(string(readme), s.Key) {
			t.Errorf("README.md does not document the key %s", s.Key)
		}
		if s.Default != "" && !strings.Contains(string(readme), "`"+s.Default+"`") {
			t.Errorf("README.md does not show the default %q of %s", s.Default, s.Key)
		}
	}
}

// TestHelpNamesTheRightType: --help shows each flag's type; a string
// option must not claim to be a duration.
func TestHelpNamesTheRightType(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	RegisterFlags(fs)
	for flag, want := range map[string]string{
		"log.format": "string", "log.level": "string", "alertmanager.timeout": "duration",
		"alertmanager.queue-max-bytes": "size", "storage.max-bytes": "size", "web.max-events-per-request": "number",
	} {
		if got := fs.Lookup(flag).Value.Type(); got != want {
			t.Errorf("--%s is shown as %s, want %s", flag, got, want)
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		want Size
	}{
		{"", 0}, {"--runtime.memory-limit=0", 0}, {"--runtime.memory-limit=200MiB", 200 << 20}, {"--runtime.memory-limit=1GB", 1e9},
	} {
		c, err := load(t, tc.arg)
		if err != nil {
			t.Fatal(err)
		}
		if c.Runtime.MemoryLimit != tc.want {
			t.Errorf("%q: MemoryLimit = %d, want %d", tc.arg, c.Runtime.MemoryLimit, tc.want)
		}
	}
}
