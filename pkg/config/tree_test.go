package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// TestEveryFieldIsOneSetting: each field of the Config tree that a user
// sets is one option, with its help and a flag of its own, and its checks
// fit its type.
func TestEveryFieldIsOneSetting(t *testing.T) {
	opts := allOptions() // panics on a check that does not fit
	if len(opts) < 40 {
		t.Fatalf("%d options", len(opts))
	}
	flags, keys := map[string]bool{}, map[string]bool{}
	for _, o := range opts {
		if o.help == "" {
			t.Errorf("%s has no help tag", o.key)
		}
		if flags[o.flag] || keys[o.key] {
			t.Errorf("--%s (%s) is there twice", o.flag, o.key)
		}
		flags[o.flag], keys[o.key] = true, true
		if got := reflect.TypeOf(o.field(&Config{})).Elem(); got != o.typ {
			t.Errorf("%s: field of type %s, option of %s", o.key, got, o.typ)
		}
	}
	for _, key := range []string{"web.listen_address", "alertmanager.urls", "source.nats.tls.ca_file", "runtime.memory_limit"} {
		if !keys[key] {
			t.Errorf("no option %s", key)
		}
	}
	if keys[httpConfigKey] || keys["file"] || keys["alertmanager.targets"] {
		t.Error("http_config, File or Targets is an option")
	}
}

// TestCheckOfRefusesAMisfit: a check tag on a field of another type than
// the check's is caught when the options are read, not when a value is.
func TestCheckOfRefusesAMisfit(t *testing.T) {
	for _, tc := range []struct {
		spec string
		typ  reflect.Type
	}{{"positive", reflect.TypeFor[string]()}, {"hostport", reflect.TypeFor[int]()}, {"nosuch", reflect.TypeFor[string]()}, {"oneof=a|b", reflect.TypeFor[int]()}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("checkOf(%q, %s) did not panic", tc.spec, tc.typ)
				}
			}()
			checkOf(tc.spec, tc.typ, "x")
		}()
	}
}

// sample is a valid value of each option other than its default.
func sample(o option) string {
	switch o.key {
	case "web.listen_address":
		return "127.0.0.1:7"
	case "web.max_request_bytes_in_flight":
		return "20MiB"
	case "alertmanager.urls":
		return "http://am-1:9093"
	case "source.nats.urls":
		return "nats://n1:4222"
	case "source.nats.subject":
		return "falco.critical.*"
	case "storage.when_full":
		return "refuse"
	case "log.level":
		return "warn"
	case "log.format":
		return "json"
	}
	switch o.typeName() {
	case "duration":
		return "7s"
	case "size":
		return "3MiB"
	case "number":
		return "7"
	case "boolean":
		return "false"
	}
	return "sample"
}

// TestSourcesDecodeAlike sets each option, in turn, through the file, the
// environment and its flag, and gets the same Config from all three: each
// source's text is decoded by the field's type alike.
func TestSourcesDecodeAlike(t *testing.T) {
	for _, o := range allOptions() {
		t.Run(o.key, func(t *testing.T) {
			v := sample(o)
			// A NATS source needs a stream; the file gives it, unless it
			// is the setting under test.
			tree := map[string]any{}
			if o.key != "source.nats.stream" {
				set(tree, "source.nats.stream", "F")
			}
			base, err := yaml.Marshal(tree)
			if err != nil {
				t.Fatal(err)
			}
			if o.list() {
				set(tree, o.key, []string{v})
			} else {
				set(tree, o.key, v)
			}
			withKey, err := yaml.Marshal(tree)
			if err != nil {
				t.Fatal(err)
			}
			fromFile := loadOK(t, "--config.file="+writeFile(t, "file.yaml", string(withKey)))
			baseFile := "--config.file=" + writeFile(t, "base.yaml", string(base))
			def := loadOK(t, baseFile)
			fromFlag := loadOK(t, baseFile, "--"+o.flag+"="+v)
			t.Setenv(envName(o.key), v)
			fromEnv := loadOK(t, baseFile)
			if reflect.DeepEqual(fieldValue(def, o), fieldValue(fromFile, o)) {
				t.Errorf("%s=%s is its default: the test sets nothing", o.key, v)
			}
			fromFile.File, fromFlag.File, fromEnv.File = "", "", ""
			if !reflect.DeepEqual(fromFile, fromFlag) || !reflect.DeepEqual(fromFile, fromEnv) {
				t.Errorf("%s=%s:\nfile %+v\nflag %+v\nenv  %+v", o.key, v, fromFile, fromFlag, fromEnv)
			}
		})
	}
}

func fieldValue(c *Config, o option) any { return reflect.ValueOf(o.field(c)).Elem().Interface() }

func loadOK(t *testing.T, args ...string) *Config {
	t.Helper()
	c, err := load(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// set puts v at the dotted key of a tree of maps.
func set(tree map[string]any, key string, v any) {
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := tree[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			tree[p] = next
		}
		tree = next
	}
	tree[parts[len(parts)-1]] = v
}

func TestSize(t *testing.T) {
	for in, want := range map[string]Size{
		"0": 0, "1048576": 1 << 20, "4MiB": 4 << 20, "4 MiB": 4 << 20, "1GB": 1e9, "2KiB": 2 << 10, "10KB": 10_000, "7B": 7, "3GiB": 3 << 30,
	} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "-1MiB", "1.5MiB", "MiB", "4MiBs", "lots", "9999999999GiB"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
	for s, want := range map[Size]string{0: "0", 1000: "1000", 1 << 20: "1MiB", 3 << 30: "3GiB", 1536: "1536", 1<<20 + 1: "1048577"} {
		if got := s.String(); got != want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(s), got, want)
		}
	}
}

// TestQuotedValues: a number or a boolean that a template quoted is read by
// the setting's type, as the same text from a flag is.
func TestQuotedValues(t *testing.T) {
	c := loadOK(t, "--config.file="+writeFile(t, "c.yaml", "alertmanager:\n  batch_size: \"10\"\n  timeout: '3s'\nweb:\n  ui: \"false\"\n  max_request_bytes: \"1MiB\"\n"))
	if c.Alertmanager.BatchSize != 10 || c.Web.UI || c.Web.MaxRequestBytes != 1<<20 || c.Alertmanager.Timeout != model.Duration(3*time.Second) {
		t.Fatalf("batch_size %d, ui %v, max_request_bytes %d, timeout %s", c.Alertmanager.BatchSize, c.Web.UI, c.Web.MaxRequestBytes, c.Alertmanager.Timeout)
	}
}
