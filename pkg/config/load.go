package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	yamlv2 "go.yaml.in/yaml/v2"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment variable that sets an option.
const EnvPrefix = "FALCO_AM_BRIDGE"

// ConfigFileFlag names the flag (and, upper-cased, the environment
// variable) that points at the configuration file.
const ConfigFileFlag = "config.file"

// httpConfigKey is the file-only key holding Prometheus's HTTP client
// configuration (TLS, authentication, proxy, headers) for Alertmanager.
const httpConfigKey = "alertmanager.http_config"

// option is one setting: its flag, its key in the file and environment, its
// default, and how its value is parsed into a Config.
type option struct {
	flag string
	key  string
	list bool   // repeatable flag, list in the file
	typ  string // shown in --help: duration, number, size, boolean; default string.
	// Not "int": viper converts flags of that type itself, silently.
	def  string
	help string
	set  func(c *Config, v value) error
}

// Options lists every setting. Flags, file keys, environment variables and
// the README's reference all come from here.
func options() []option {
	return []option{
		{flag: "web.listen-address", key: "web.listen_address", def: ":2802",
			help: "Address to listen on for Falco events, health checks and metrics.",
			set:  to(value.hostPort, func(c *Config) *string { return &c.Web.ListenAddress })},
		{flag: "web.config.file", key: "web.config_file",
			help: "Prometheus web configuration file for TLS, mutual TLS and basic auth on the listener.",
			set:  to(value.str, func(c *Config) *string { return &c.Web.ConfigFile })},
		{flag: "web.bearer-token-file", key: "web.bearer_token_file",
			help: "File holding a bearer token that senders must present (Authorization: Bearer ...).",
			set:  to(value.str, func(c *Config) *string { return &c.Web.BearerTokenFile })},
		{flag: "web.max-request-bytes", key: "web.max_request_bytes", typ: "size", def: "4MiB",
			help: "Largest request body accepted, after gzip decompression.",
			set:  to(value.bytes, func(c *Config) *int64 { return &c.Web.MaxRequestBytes })},
		{flag: "web.max-request-bytes-in-flight", key: "web.max_request_bytes_in_flight", typ: "size", def: "16MiB",
			help: "Most memory all request bodies being read take together; past it requests are answered 503 with Retry-After.",
			set:  to(value.bytes, func(c *Config) *int64 { return &c.Web.MaxRequestBytesInFlight })},
		{flag: "web.max-events-per-request", key: "web.max_events_per_request", typ: "number", def: "10000",
			help: "Most events accepted in one request.",
			set:  to(value.positiveInt, func(c *Config) *int { return &c.Web.MaxEventsPerRequest })},
		{flag: "web.read-header-timeout", key: "web.read_header_timeout", typ: "duration", def: "10s",
			help: "Time allowed to read request headers.",
			set:  to(value.duration, func(c *Config) *time.Duration { return &c.Web.ReadHeaderTimeout })},
		{flag: "web.read-timeout", key: "web.read_timeout", typ: "duration", def: "30s",
			help: "Time allowed to read a whole request.",
			set:  to(value.duration, func(c *Config) *time.Duration { return &c.Web.ReadTimeout })},
		{flag: "web.write-timeout", key: "web.write_timeout", typ: "duration", def: "30s",
			help: "Time allowed to write a response.",
			set:  to(value.duration, func(c *Config) *time.Duration { return &c.Web.WriteTimeout })},
		{flag: "web.idle-timeout", key: "web.idle_timeout", typ: "duration", def: "2m",
			help: "How long an idle keep-alive connection (Falco reuses one) stays open.",
			set:  to(value.duration, func(c *Config) *time.Duration { return &c.Web.IdleTimeout })},
		{flag: "web.ui", key: "web.ui", typ: "boolean", def: "true",
			help: "Serve the status page (/), the mapping playground (/playground), /api/v1/status and /api/v1/translate, behind the same authentication as ingest. They show event contents.",
			set:  to(value.boolean, func(c *Config) *bool { return &c.Web.UI })},
		{flag: "alertmanager.url", key: "alertmanager.urls", list: true, def: "http://127.0.0.1:9093",
			help: "Alertmanager to send to; repeat for every Alertmanager of an HA cluster. dns+http://name:port follows A/AAAA records, dnssrv+http://_web._tcp.name follows SRV records.",
			set: func(c *Config, v value) error {
				urls, err := v.strs()
				if err != nil {
					return err
				}
				if len(urls) == 0 {
					return errors.New("at least one Alertmanager URL is needed")
				}
				c.Alertmanager.URLs = urls
				var errs []error
				for i, u := range urls {
					t, err := ParseTarget(u)
					if err != nil {
						errs = append(errs, fmt.Errorf("[%d]: %w", i, err))
						continue
					}
					c.Alertmanager.Targets = append(c.Alertmanager.Targets, t)
				}
				return errors.Join(errs...)
			}},
		{flag: "alertmanager.timeout", key: "alertmanager.timeout", typ: "duration", def: "10s",
			help: "Timeout of one POST to an Alertmanager.",
			set:  to(value.positiveDuration, func(c *Config) *time.Duration { return &c.Alertmanager.Timeout })},
		{flag: "alertmanager.queue-capacity", key: "alertmanager.queue_capacity", typ: "number", def: "10000",
			help: "Alerts held in memory per Alertmanager: the whole queue without --storage.path (when full the oldest are dropped), else the window read ahead from the durable queue.",
			set:  to(value.positiveInt, func(c *Config) *int { return &c.Alertmanager.QueueCapacity })},
		{flag: "alertmanager.queue-max-bytes", key: "alertmanager.queue_max_bytes", typ: "size", def: "32MiB",
			help: "Bytes of alerts held in memory per Alertmanager (their encoding and a fixed overhead each), as queue-capacity bounds them in alerts.",
			set:  to(value.bytes, func(c *Config) *int64 { return &c.Alertmanager.QueueMaxBytes })},
		{flag: "alertmanager.batch-size", key: "alertmanager.batch_size", typ: "number", def: "2048",
			help: "Most alerts in one POST. Large batches keep delivery ahead of a burst; Alertmanager takes thousands in one request.",
			set:  to(value.positiveInt, func(c *Config) *int { return &c.Alertmanager.BatchSize })},
		{flag: "alertmanager.max-requests-in-flight", key: "alertmanager.max_requests_in_flight", typ: "number", def: "2",
			help: "POSTs sent to one Alertmanager at once; two versions of one alert are never in flight together.",
			set:  to(value.positiveInt, func(c *Config) *int { return &c.Alertmanager.MaxRequestsInFlight })},
		{flag: "alertmanager.batch-wait", key: "alertmanager.batch_wait", typ: "duration", def: "10ms",
			help: "How long a new alert waits for others to join its batch.",
			set:  to(value.duration, func(c *Config) *time.Duration { return &c.Alertmanager.BatchWait })},
		{flag: "alertmanager.min-backoff", key: "alertmanager.min_backoff", typ: "duration", def: "500ms",
			help: "First delay before retrying a failed POST; it doubles up to the maximum.",
			set:  to(value.positiveDuration, func(c *Config) *time.Duration { return &c.Alertmanager.MinBackoff })},
		{flag: "alertmanager.max-backoff", key: "alertmanager.max_backoff", typ: "duration", def: "10s",
			help: "Longest delay between retries.",
			set:  to(value.positiveDuration, func(c *Config) *time.Duration { return &c.Alertmanager.MaxBackoff })},
		{flag: "alertmanager.refresh-interval", key: "alertmanager.refresh_interval", typ: "duration", def: "30s",
			help: "How often dns+ and dnssrv+ names are resolved again.",
			set:  to(value.positiveDuration, func(c *Config) *time.Duration { return &c.Alertmanager.RefreshInterval })},
		{flag: "alertmanager.drain-timeout", key: "alertmanager.drain_timeout", typ: "duration", def: "20s",
			help: "On shutdown, how long to keep delivering queued alerts.",
			set:  to(value.duration, func(c *Config) *time.Duration { return &c.Alertmanager.DrainTimeout })},
		{flag: "mapping.file", key: "mapping.file",
			help: "Label-mapping file; empty uses the mapping built into the binary (mapping/default.yaml).",
			set:  to(value.str, func(c *Config) *string { return &c.Mapping.File })},
		{flag: "storage.path", key: "storage.path",
			help: "Directory of the durable queue; empty keeps alerts in memory only.",
			set:  to(value.str, func(c *Config) *string { return &c.Storage.Path })},
		{flag: "storage.fsync-interval", key: "storage.fsync_interval", typ: "duration", def: "1s",
			help: "How often the durable queue is synced to disk; 0 syncs before every answer.",
			set:  to(value.duration, func(c *Config) *time.Duration { return &c.Storage.FsyncInterval })},
		{flag: "sensors.max-tracked", key: "sensors.max_tracked", typ: "number", def: "10000",
			help: "Most Falco sensors (hostnames) whose last event time is tracked; when full, the one heard from longest ago is forgotten.",
			set:  to(value.positiveInt, func(c *Config) *int { return &c.Sensors.MaxTracked })},
		{flag: "sensors.silent-after", key: "sensors.silent_after", typ: "duration", def: "0",
			help: "Send a FalcoSensorSilent alert for a sensor that sent events and then nothing for this long (one FalcoSensorsSilent for all when more than 10 are); 0 turns it off.",
			set:  to(value.duration, func(c *Config) *time.Duration { return &c.Sensors.SilentAfter })},
		{flag: "storage.max-bytes", key: "storage.max_bytes", typ: "size", def: "256MiB",
			help: "Most disk space the durable queue takes; when full, storage.when-full says what gives.",
			set:  to(value.bytes, func(c *Config) *int64 { return &c.Storage.MaxBytes })},
		{flag: "storage.when-full", key: "storage.when_full", def: "drop-oldest",
			help: "What a full durable queue does: drop-oldest deletes its oldest segment (counted), refuse answers new events 503 with Retry-After.",
			set: func(c *Config, v value) (err error) {
				c.Storage.WhenFull, err = v.oneOf("drop-oldest", "refuse")
				return
			}},
		{flag: "runtime.memory-limit", key: "runtime.memory_limit", typ: "size", def: "0",
			help: "Go soft memory limit (like 200MiB), which makes the garbage collector work harder as memory use nears it; 0 takes GOMEMLIMIT when set, else 90% of the cgroup's memory limit, else 2 × alertmanager.queue-max-bytes + 32MiB, which keeps the RSS within 2 × queue-max-bytes + 64MiB.",
			set:  to(value.sizeOrZero, func(c *Config) *int64 { return &c.Runtime.MemoryLimit })},
		{flag: "source.nats.url", key: "source.nats.urls", list: true,
			help: "NATS server to pull Falco events from through JetStream, as falcosidekick's NATS output publishes them; repeat for every server of a cluster. Empty: HTTP ingest only.",
			set: func(c *Config, v value) error {
				urls, err := v.strs()
				if err != nil {
					return err
				}
				var errs []error
				for i, u := range urls {
					if _, err := ParseNATSURL(u); err != nil {
						errs = append(errs, fmt.Errorf("[%d]: %w", i, err))
					}
				}
				c.Source.NATS.URLs = urls
				return errors.Join(errs...)
			}},
		{flag: "source.nats.stream", key: "source.nats.stream",
			help: "JetStream stream holding the events (one capturing falcosidekick's subjects, falco.>); needed with source.nats.url.",
			set:  to(value.natsName, func(c *Config) *string { return &c.Source.NATS.Stream })},
		{flag: "source.nats.subject", key: "source.nats.subject", def: "falco.>",
			help: "Subjects of the stream to consume; falcosidekick publishes on falco.<priority>.<rule>.",
			set:  to(value.natsSubject, func(c *Config) *string { return &c.Source.NATS.Subject })},
		{flag: "source.nats.consumer", key: "source.nats.consumer", def: "falco-am-bridge",
			help: "Durable consumer name; bridges with the same name share the events, each taken by one of them.",
			set: func(c *Config, v value) (err error) {
				c.Source.NATS.Consumer, err = v.natsName()
				if err == nil && c.Source.NATS.Consumer == "" {
					err = errors.New("a durable consumer needs a name")
				}
				return
			}},
		{flag: "source.nats.credentials-file", key: "source.nats.credentials_file",
			help: "NATS credentials file (.creds: a user JWT and its NKey seed).",
			set:  to(value.str, func(c *Config) *string { return &c.Source.NATS.CredentialsFile })},
		{flag: "source.nats.nkey-seed-file", key: "source.nats.nkey_seed_file",
			help: "File holding an NKey seed (SU...) to authenticate to NATS with.",
			set:  to(value.str, func(c *Config) *string { return &c.Source.NATS.NKeySeedFile })},
		{flag: "source.nats.tls.ca-file", key: "source.nats.tls.ca_file",
			help: "CA certificates to verify the NATS servers with, instead of the system's.",
			set:  to(value.str, func(c *Config) *string { return &c.Source.NATS.TLSCAFile })},
		{flag: "source.nats.tls.cert-file", key: "source.nats.tls.cert_file",
			help: "Client certificate for NATS (mutual TLS), with source.nats.tls.key_file.",
			set:  to(value.str, func(c *Config) *string { return &c.Source.NATS.TLSCertFile })},
		{flag: "source.nats.tls.key-file", key: "source.nats.tls.key_file",
			help: "Private key of the client certificate for NATS.",
			set:  to(value.str, func(c *Config) *string { return &c.Source.NATS.TLSKeyFile })},
		{flag: "source.nats.max-ack-pending", key: "source.nats.max_ack_pending", typ: "number", def: "1000",
			help: "Events taken from the stream and not yet safe (spooled, or done by every Alertmanager queue), over all the bridges sharing the consumer; past it the stream holds the rest. Without --storage.path, at most alertmanager.queue_capacity.",
			set:  to(value.positiveInt, func(c *Config) *int { return &c.Source.NATS.MaxAckPending })},
		{flag: "source.nats.ack-wait", key: "source.nats.ack_wait", typ: "duration", def: "30s",
			help: "How long NATS waits for a bridge to acknowledge an event before it gives it to another; a bridge renews it for the events it still holds.",
			set:  to(value.positiveDuration, func(c *Config) *time.Duration { return &c.Source.NATS.AckWait })},
		{flag: "log.level", key: "log.level", def: "info",
			help: "Log level: debug, info, warn or error.",
			set: func(c *Config, v value) (err error) {
				c.Log.Level, err = v.oneOf("debug", "info", "warn", "error")
				return
			}},
		{flag: "log.format", key: "log.format", def: "logfmt",
			help: "Log format: logfmt or json.",
			set: func(c *Config, v value) (err error) {
				c.Log.Format, err = v.oneOf("logfmt", "json")
				return
			}},
	}
}

// Setting describes one option for documentation.
type Setting struct {
	Flag, Key, Env, Default, Help string
}

// Settings lists every option; the README's reference and the reload
// tests are checked against it.
func Settings() []Setting {
	out := []Setting{{Flag: ConfigFileFlag, Env: envName(ConfigFileFlag), Help: "YAML configuration file; every other flag can also be set there."}}
	for _, o := range options() {
		out = append(out, Setting{Flag: o.flag, Key: o.key, Env: envName(o.key), Default: o.def, Help: o.help})
	}
	out = append(out, Setting{Key: httpConfigKey, Help: "Prometheus HTTP client configuration for Alertmanager (tls_config, basic_auth, authorization, oauth2, proxy_url, http_headers); file only."})
	return out
}

func envName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// RegisterFlags adds the serve flags to fs.
func RegisterFlags(fs *pflag.FlagSet) {
	fs.String(ConfigFileFlag, "", "YAML configuration file; every other flag can also be set there (env "+envName(ConfigFileFlag)+").")
	for _, o := range options() {
		help := o.help + " (env " + envName(o.key) + ")"
		if o.list {
			var def []string
			if o.def != "" {
				def = []string{o.def}
			}
			fs.StringArray(o.flag, def, help)
			continue
		}
		fs.Var(&textValue{s: o.def, typ: o.typ}, o.flag, help)
		fs.Lookup(o.flag).DefValue = o.def
		if o.typ == "boolean" {
			fs.Lookup(o.flag).NoOptDefVal = "true"
		}
	}
}

// Load reads the configuration: flags set on the command line win over
// environment variables, which win over the file, which wins over defaults.
// Every problem is reported, each naming its key and value.
func Load(fs *pflag.FlagSet) (*Config, error) {
	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_", "-", "_"))
	v.AutomaticEnv()
	opts := options()
	for _, o := range opts {
		f := fs.Lookup(o.flag)
		if f == nil {
			return nil, fmt.Errorf("flag --%s is not registered", o.flag)
		}
		if err := v.BindPFlag(o.key, f); err != nil {
			return nil, err
		}
	}

	c := &Config{}
	if f := fs.Lookup(ConfigFileFlag); f != nil && f.Changed {
		c.File = f.Value.String()
	} else {
		c.File = os.Getenv(envName(ConfigFileFlag))
	}
	var raw map[string]any
	var lines keyLines
	if c.File != "" {
		data, err := ReadFile("config file", c.File, MaxConfigFileBytes)
		if err != nil {
			return nil, err
		}
		// The file is parsed once, into a tree of nodes: the settings,
		// the lines they are on and what viper overlays come from it.
		var root yaml.Node
		if err := yaml.Unmarshal(data, &root); err != nil {
			return nil, fmt.Errorf("%s: %w", c.File, err)
		}
		if root.Kind != 0 {
			if err := root.Decode(&raw); err != nil {
				if _, ok := errors.AsType[*yaml.TypeError](err); ok {
					return nil, fmt.Errorf("%s: expected a mapping of settings (web:, alertmanager:, ...), not %w", c.File, err)
				}
				return nil, fmt.Errorf("%s: %w", c.File, err)
			}
		}
		lines = keyLines{}
		lines.walk("", &root)
		if err := checkKeys(lines, raw, opts); err != nil {
			return nil, fmt.Errorf("invalid configuration (%s):\n%w", c.File, err)
		}
		if err := v.MergeConfigMap(raw); err != nil {
			return nil, fmt.Errorf("%s: %w", c.File, err)
		}
	}

	var errs []error
	for _, o := range opts {
		if err := o.set(c, value{raw: v.Get(o.key)}); err != nil {
			// Name the line when the value is the file's, not a flag's
			// or the environment's.
			at := ""
			if f := fs.Lookup(o.flag); !f.Changed && os.Getenv(envName(o.key)) == "" {
				at = lines.at(o.key)
			}
			errs = append(errs, fmt.Errorf("%s%s: %w", at, o.key, err))
		}
	}
	if sub, ok := lookup(raw, httpConfigKey); ok {
		if err := c.loadHTTPConfig(sub); err != nil {
			at := lines.at(httpConfigKey)
			var unknown unknownField
			if errors.As(err, &unknown) {
				at = lines.at(httpConfigKey + "." + string(unknown))
			}
			errs = append(errs, fmt.Errorf("%s%s: %w", at, httpConfigKey, err))
		}
	}
	if c.Web.MaxRequestBytesInFlight < c.Web.MaxRequestBytes {
		errs = append(errs, fmt.Errorf("%sweb.max_request_bytes_in_flight: %d is less than web.max_request_bytes (%d): raise it, or no request of the largest size could be read", lines.at("web.max_request_bytes_in_flight"), c.Web.MaxRequestBytesInFlight, c.Web.MaxRequestBytes))
	}
	if c.Alertmanager.MaxBackoff < c.Alertmanager.MinBackoff {
		errs = append(errs, fmt.Errorf("%salertmanager.max_backoff: %s is shorter than alertmanager.min_backoff (%s)", lines.at("alertmanager.max_backoff"), c.Alertmanager.MaxBackoff, c.Alertmanager.MinBackoff))
	}
	errs = append(errs, c.checkNATS()...)
	if err := errors.Join(errs...); err != nil {
		if c.File != "" {
			return nil, fmt.Errorf("invalid configuration (%s):\n%w", c.File, err)
		}
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return c, nil
}

// checkNATS checks the JetStream source's settings against each other.
func (c *Config) checkNATS() []error {
	n := c.Source.NATS
	if !n.Enabled() {
		return nil
	}
	var errs []error
	if n.Stream == "" {
		errs = append(errs, errors.New("source.nats.stream: a stream name is needed with source.nats.urls"))
	}
	if n.CredentialsFile != "" && n.NKeySeedFile != "" {
		errs = append(errs, errors.New("source.nats.nkey_seed_file: set at most one of source.nats.credentials_file and source.nats.nkey_seed_file"))
	}
	if (n.TLSCertFile == "") != (n.TLSKeyFile == "") {
		errs = append(errs, errors.New("source.nats.tls.cert_file: a client certificate needs both source.nats.tls.cert_file and source.nats.tls.key_file"))
	}
	// In memory, a full queue drops its oldest alerts, and their events
	// would be acknowledged unsent: the stream must stop first.
	if c.Storage.Path == "" && n.MaxAckPending > c.Alertmanager.QueueCapacity {
		errs = append(errs, fmt.Errorf("source.nats.max_ack_pending: %d is more than alertmanager.queue_capacity (%d): without storage.path a full queue would drop events already taken from the stream; lower it or raise the queue", n.MaxAckPending, c.Alertmanager.QueueCapacity))
	}
	return errs
}

func (c *Config) loadHTTPConfig(sub any) error {
	data, err := yamlv2.Marshal(sub)
	if err != nil {
		return err
	}
	if err := yamlv2.UnmarshalStrict(data, &c.Alertmanager.HTTPConfig); err != nil {
		// Line numbers would point into the re-encoded section, not the
		// file: the caller names the line of the file.
		var te *yamlv2.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			msg := te.Errors[0]
			if _, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "line ") {
				msg = rest
			}
			if name, ok := strings.CutPrefix(msg, "field "); ok {
				if name, _, ok := strings.Cut(name, " not found"); ok {
					return unknownField(name)
				}
			}
			return errors.New(msg)
		}
		return err
	}
	if c.File != "" {
		c.Alertmanager.HTTPConfig.SetDirectory(filepath.Dir(c.File))
	}
	return c.Alertmanager.HTTPConfig.Validate()
}

// unknownField is a key of http_config that the HTTP client has not.
type unknownField string

func (f unknownField) Error() string { return fmt.Sprintf("unknown key %q", string(f)) }

// keyLines maps the keys of the configuration file, dotted
// (alertmanager.http_config.basic_auth), to the lines they are on.
type keyLines map[string]int

func (l keyLines) walk(prefix string, n *yaml.Node) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			l.walk(prefix, c)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if prefix != "" {
				key = prefix + "." + key
			}
			l[key] = n.Content[i].Line
			l.walk(key, n.Content[i+1])
		}
	}
}

// at returns "line N: " for key, or "" when the file does not hold it.
func (l keyLines) at(key string) string {
	if n, ok := l[key]; ok {
		return fmt.Sprintf("line %d: ", n)
	}
	return ""
}

// checkKeys rejects keys of the file that are no option, naming each.
func checkKeys(lines keyLines, raw map[string]any, opts []option) error {
	known := map[string]bool{httpConfigKey: true}
	sections := map[string]bool{} // every key's parents: web, source, source.nats
	for _, o := range opts {
		known[o.key] = true
		for i, ch := range o.key {
			if ch == '.' {
				sections[o.key[:i]] = true
			}
		}
	}
	var errs []error
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			full := k
			if prefix != "" {
				full = prefix + "." + k
			}
			switch {
			case known[full]:
			case sections[full]:
				sub, ok := m[k].(map[string]any)
				if !ok {
					if m[k] != nil {
						errs = append(errs, fmt.Errorf("%s%s: expected a mapping of settings", lines.at(full), full))
					}
					continue
				}
				walk(full, sub)
			default:
				errs = append(errs, fmt.Errorf("%sunknown key %q%s", lines.at(full), full, suggest(full, keysAndSections(known, sections))))
			}
		}
	}
	walk("", raw)
	return errors.Join(errs...)
}

func lookup(m map[string]any, key string) (any, bool) {
	parts := strings.Split(key, ".")
	var cur any = m
	for _, p := range parts {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = mm[p]
		if !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// value is a raw setting from whichever source won.
type value struct{ raw any }

// to is the set function of a setting that parse reads into the field
// that field points at.
func to[T any](parse func(value) (T, error), field func(*Config) *T) func(*Config, value) error {
	return func(c *Config, v value) (err error) {
		*field(c), err = parse(v)
		return err
	}
}

func (v value) String() string {
	switch r := v.raw.(type) {
	case nil:
		return ""
	case string:
		return r
	default:
		return fmt.Sprint(r)
	}
}

func (v value) str() (string, error) {
	switch v.raw.(type) {
	case map[string]any, []any:
		return "", fmt.Errorf("expected a string, got %v", v.raw)
	}
	return v.String(), nil
}

func (v value) strs() ([]string, error) {
	var out []string
	switch r := v.raw.(type) {
	case nil:
	case string:
		// From the environment: comma- or space-separated.
		out = strings.FieldsFunc(r, func(c rune) bool { return c == ',' || c == ' ' })
	case []string:
		out = r
	case []any:
		for i, e := range r {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("[%d]: expected a string, got %v", i, e)
			}
			out = append(out, s)
		}
	default:
		return nil, fmt.Errorf("expected a list of strings, got %v", r)
	}
	return out, nil
}

// natsName reads a stream or consumer name: no spaces, dots, wildcards
// or path separators.
func (v value) natsName() (string, error) {
	s, err := v.str()
	if err != nil {
		return "", err
	}
	if strings.ContainsAny(s, " \t\r\n.*>/\\") {
		return "", fmt.Errorf("%q is not a NATS name: no spaces, '.', '*', '>', '/' or '\\'", s)
	}
	return s, nil
}

// natsSubject reads a subject filter such as falco.> or falco.critical.*.
func (v value) natsSubject() (string, error) {
	s, err := v.str()
	if err != nil {
		return "", err
	}
	tokens := strings.Split(s, ".")
	for i, t := range tokens {
		switch {
		case t == "" || strings.ContainsAny(t, " \t\r\n"):
			return "", fmt.Errorf("%q is not a NATS subject: empty token or white space", s)
		case t == ">" && i != len(tokens)-1:
			return "", fmt.Errorf("%q is not a NATS subject: '>' must be the last token", s)
		case len(t) > 1 && strings.ContainsAny(t, "*>"):
			return "", fmt.Errorf("%q is not a NATS subject: a wildcard must be a whole token", s)
		}
	}
	return s, nil
}

func (v value) oneOf(allowed ...string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(v.String()))
	if !slices.Contains(allowed, s) {
		return "", fmt.Errorf("%q is not one of %s", v.String(), strings.Join(allowed, ", "))
	}
	return s, nil
}

func (v value) hostPort() (string, error) {
	s := v.String()
	if _, _, err := net.SplitHostPort(s); err != nil {
		return "", fmt.Errorf("%q is not host:port: %w", s, err)
	}
	return s, nil
}

func (v value) duration() (time.Duration, error) {
	if d, ok := v.raw.(time.Duration); ok {
		return d, nil
	}
	s := strings.TrimSpace(v.String())
	if s == "" || s == "0" {
		return 0, nil
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		if td, err2 := time.ParseDuration(s); err2 == nil && td >= 0 {
			return td, nil
		}
		if strings.HasPrefix(s, "-") {
			return 0, fmt.Errorf("%q is negative: expected a duration (like 500ms, 10s, 5m)", s)
		}
		return 0, fmt.Errorf("%q is not a duration (like 500ms, 10s, 5m)", s)
	}
	return time.Duration(d), nil
}

func (v value) positiveDuration() (time.Duration, error) {
	d, err := v.duration()
	if err == nil && d <= 0 {
		err = fmt.Errorf("%q must be greater than 0", v.String())
	}
	return d, err
}

func (v value) positiveInt() (int, error) {
	var n int
	switch r := v.raw.(type) {
	case int:
		n = r
	case int64:
		n = int(r)
	case float64:
		if r != float64(int(r)) {
			return 0, fmt.Errorf("%v is not a whole number", r)
		}
		n = int(r)
	default:
		var err error
		if n, err = strconv.Atoi(strings.TrimSpace(v.String())); err != nil {
			return 0, fmt.Errorf("%q is not a whole number", v.String())
		}
	}
	if n <= 0 {
		return 0, fmt.Errorf("%d must be greater than 0", n)
	}
	return n, nil
}

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// bytes reads a size: a number of bytes, or a number with a unit (KiB, MiB,
// GiB, KB, MB, GB).
func (v value) bytes() (int64, error) {
	s := strings.TrimSpace(v.String())
	mult := int64(1)
	for _, u := range byteUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size (like 4MiB or 1048576)", v.String())
	}
	return n * mult, nil
}

// sizeOrZero is bytes, or 0.
func (v value) sizeOrZero() (int64, error) {
	if strings.TrimSpace(v.String()) == "0" {
		return 0, nil
	}
	n, err := v.bytes()
	if err != nil {
		return 0, fmt.Errorf("%q is not a size (like 200MiB) or 0", v.String())
	}
	return n, nil
}

// textValue is a string flag that names its type in --help; the value is
// parsed, with errors naming the key, by Load.
type textValue struct{ s, typ string }

func (v *textValue) String() string     { return v.s }
func (v *textValue) Set(s string) error { v.s = s; return nil }
func (v *textValue) Type() string {
	if v.typ == "" {
		return "string"
	}
	return v.typ
}

func keysAndSections(known, sections map[string]bool) map[string]bool {
	all := make(map[string]bool, len(known)+len(sections))
	for k := range known {
		all[k] = true
	}
	for k := range sections {
		all[k] = true
	}
	return all
}

// suggest returns `; did you mean "x"?` for the known key nearest to key,
// when one is a few edits away.
func suggest(key string, known map[string]bool) string {
	best, bestD := "", 4
	for k := range known {
		if d := editDistance(key, k); d < bestD || d == bestD && k < best {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
