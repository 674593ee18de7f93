package config

import (
	"path/filepath"
	"testing"
)

// TestBadConfigFiles pins the exact error of each bad file in
// testdata/bad: the line, the key and what was expected.
func TestBadConfigFiles(t *testing.T) {
	want := map[string]string{
		"backoff-order.yml":              "invalid configuration (testdata/bad/backoff-order.yml):\nline 3: alertmanager.max_backoff: 1s is shorter than alertmanager.min_backoff (20s)",
		"bad-yaml.yml":                   "testdata/bad/bad-yaml.yml: yaml: line 2: did not find expected key",
		"batch-size-zero.yml":            "invalid configuration (testdata/bad/batch-size-zero.yml):\nline 2: alertmanager.batch_size: 0 must be greater than 0",
		"duplicate-section.yml":          "invalid configuration (testdata/bad/duplicate-section.yml):\nline 5: \"web\" is set again; it is first set on line 1",
		"events-zero.yml":                "invalid configuration (testdata/bad/events-zero.yml):\nline 2: web.max_events_per_request: 0 must be greater than 0",
		"fsync-text.yml":                 "invalid configuration (testdata/bad/fsync-text.yml):\nline 2: storage.fsync_interval: \"often\" is not a duration (like 500ms, 10s, 5m)",
		"http-config-two-auths.yml":      "invalid configuration (testdata/bad/http-config-two-auths.yml):\nline 2: alertmanager.http_config: at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured",
		"http-config-unknown.yml":        "invalid configuration (testdata/bad/http-config-unknown.yml):\nline 3: unknown key \"alertmanager.http_config.bearer_tokn\"; did you mean \"alertmanager.http_config.bearer_token\"?",
		"in-flight-below-request.yml":    "invalid configuration (testdata/bad/in-flight-below-request.yml):\nline 3: web.max_request_bytes_in_flight: 1048576 is less than web.max_request_bytes (8388608): raise it, or no request of the largest size could be read",
		"in-flight-zero.yml":             "invalid configuration (testdata/bad/in-flight-zero.yml):\nline 2: alertmanager.max_requests_in_flight: 0 must be greater than 0",
		"listen-no-port.yml":             "invalid configuration (testdata/bad/listen-no-port.yml):\nline 2: web.listen_address: \"localhost\" is not host:port: address localhost: missing port in address",
		"log-format.yml":                 "invalid configuration (testdata/bad/log-format.yml):\nline 2: log.format: \"text\" is not one of logfmt, json",
		"log-level.yml":                  "invalid configuration (testdata/bad/log-level.yml):\nline 2: log.level: \"verbose\" is not one of debug, info, warn, error",
		"max-bytes-unit.yml":             "invalid configuration (testdata/bad/max-bytes-unit.yml):\nline 2: storage.max_bytes: \"256MiBs\" is not a size (like 4MiB or 1048576)",
		"max-request-bytes-negative.yml": "invalid configuration (testdata/bad/max-request-bytes-negative.yml):\nline 2: web.max_request_bytes: \"-1MiB\" is not a size (like 4MiB or 1048576)",
		"max-request-bytes-word.yml":     "invalid configuration (testdata/bad/max-request-bytes-word.yml):\nline 2: web.max_request_bytes: \"lots\" is not a size (like 4MiB or 1048576)",
		"memory-limit.yml":               "invalid configuration (testdata/bad/memory-limit.yml):\nline 2: runtime.memory_limit: \"half\" is not a size (like 4MiB or 1048576)",
		"nats-no-stream.yml":             "invalid configuration (testdata/bad/nats-no-stream.yml):\nsource.nats.stream: a stream name is needed with source.nats.urls",
		"not-a-map.yml":                  "testdata/bad/not-a-map.yml: line 1: expected a mapping of settings (web:, alertmanager:, ...), not a list",
		"queue-capacity-text.yml":        "invalid configuration (testdata/bad/queue-capacity-text.yml):\nline 2: alertmanager.queue_capacity: \"many\" is not a whole number",
		"sensors-silent.yml":             "invalid configuration (testdata/bad/sensors-silent.yml):\nline 2: sensors.silent_after: \"soon\" is not a duration (like 500ms, 10s, 5m)",
		"timeout-negative.yml":           "invalid configuration (testdata/bad/timeout-negative.yml):\nline 2: alertmanager.timeout: \"-5s\" is negative: expected a duration (like 500ms, 10s, 5m)",
		"timeout-no-unit.yml":            "invalid configuration (testdata/bad/timeout-no-unit.yml):\nline 2: web.read_timeout: \"30\" is not a duration (like 500ms, 10s, 5m)",
		"unknown-key.yml":                "invalid configuration (testdata/bad/unknown-key.yml):\nline 2: unknown key \"web.listen_adress\"; did you mean \"web.listen_address\"?", //nolint:misspell // the misspelt key is what the test is about
		"unknown-section.yml":            "invalid configuration (testdata/bad/unknown-section.yml):\nline 1: unknown key \"alertmanagr\"; did you mean \"alertmanager\"?",
		"url-no-host.yml":                "invalid configuration (testdata/bad/url-no-host.yml):\nline 2: alertmanager.urls: [0]: \"http://\" has no host",
		"url-not-list.yml":               "invalid configuration (testdata/bad/url-not-list.yml):\nline 2: alertmanager.urls: expected a list of strings, got 12",
		"url-scheme.yml":                 "invalid configuration (testdata/bad/url-scheme.yml):\nline 2: alertmanager.urls: [0]: \"ftp://am:9093\" is not an http(s) URL",
		"web-ui-text.yml":                "invalid configuration (testdata/bad/web-ui-text.yml):\nline 2: web.ui: \"maybe\" is not true or false",
		"when-full.yml":                  "invalid configuration (testdata/bad/when-full.yml):\nline 2: storage.when_full: \"drop-newest\" is not one of drop-oldest, refuse",
	}
	files, err := filepath.Glob("testdata/bad/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 || len(files) != len(want) {
		t.Fatalf("%d bad files in testdata/bad, %d expected errors", len(files), len(want))
	}
	for _, f := range files {
		name := filepath.Base(f)
		_, err := load(t, "--config.file="+f)
		switch {
		case err == nil:
			t.Errorf("%s: loaded without error", name)
		case err.Error() != want[name]:
			t.Errorf("%s:\ngot  %q\nwant %q", name, err.Error(), want[name])
		}
	}
}
