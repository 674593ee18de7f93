package config

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/spf13/pflag"
)

// EnvPrefix starts every environment variable that sets an option.
const EnvPrefix = "FALCO_AM_BRIDGE"

// ConfigFileFlag names the flag (and, upper-cased, the environment
// variable) that points at the configuration file.
const ConfigFileFlag = "config.file"

// httpConfigKey is the file-only key holding Prometheus's HTTP client
// configuration (TLS, authentication, proxy, headers) for Alertmanager.
const httpConfigKey = "alertmanager.http_config"

// option is one setting: its flag, its default, its help, the field of
// the Config tree it fills and what its value must be. Its key in the file
// and the environment is the field's path of yaml tags.
type option struct {
	flag, def, help string
	key             string       // web.listen_address; set by allOptions
	typ             reflect.Type // the field's
	field           func(*Config) any
	check           func(*Config) error
}

// opt is the option of the field that field points at, its value checked
// by each of checks in turn once decoded.
func opt[T any](flag, def, help string, field func(*Config) *T, checks ...func(*T) error) option {
	return option{flag: flag, def: def, help: help, typ: reflect.TypeFor[T](),
		field: func(c *Config) any { return field(c) },
		check: func(c *Config) error {
			for _, check := range checks {
				if err := check(field(c)); err != nil {
					return err
				}
			}
			return nil
		}}
}

// list says whether the option is a repeatable flag, a list in the file.
func (o option) list() bool { return o.typ.Kind() == reflect.Slice }

// typeName is the option's type as --help shows it.
func (o option) typeName() string {
	switch o.typ {
	case reflect.TypeFor[model.Duration]():
		return "duration"
	case reflect.TypeFor[Size]():
		return "size"
	case reflect.TypeFor[int]():
		// Not "int": viper converts flags of that type itself, silently.
		return "number"
	case reflect.TypeFor[bool]():
		return "boolean"
	}
	return "string"
}

// expected says what a value of the option's type looks like.
func (o option) expected() string {
	switch o.typeName() {
	case "duration":
		return "a duration (like 500ms, 10s, 5m)"
	case "size":
		return "a size (like 4MiB or 1048576)"
	case "number":
		return "a whole number"
	case "boolean":
		return "true or false"
	}
	if o.list() {
		return "a list of strings"
	}
	return "a string"
}

// allOptions is options with their keys, derived once.
var allOptions = sync.OnceValue(func() []option {
	opts := options()
	var scratch Config
	keys := fieldKeys(&scratch)
	for i := range opts {
		p := reflect.ValueOf(opts[i].field(&scratch))
		key, ok := keys[fieldAddr{p.Pointer(), p.Type()}]
		if !ok {
			panic("config: option --" + opts[i].flag + " fills no field of the Config tree")
		}
		opts[i].key = key
	}
	return opts
})

// fieldAddr tells the fields of a Config apart: by address, and by type
// for a struct and its first field, which share one.
type fieldAddr struct {
	at  uintptr
	typ reflect.Type
}

// fieldKeys maps every field of c, nested ones included, to its key. The
// options' fields are looked up in it by address.
func fieldKeys(c *Config) map[fieldAddr]string {
	keys := map[fieldAddr]string{}
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		for i := range v.NumField() {
			name := yamlName(v.Type().Field(i))
			if name == "" {
				continue
			}
			f := v.Field(i)
			key := joinKey(prefix, name)
			keys[fieldAddr{f.Addr().Pointer(), f.Addr().Type()}] = key
			if f.Kind() == reflect.Struct && ownType(f.Type()) {
				walk(f, key)
			}
		}
	}
	walk(reflect.ValueOf(c).Elem(), "")
	return keys
}

// Options lists every setting. Flags, file keys, environment variables and
// the README's reference all come from here.
func options() []option {
	return []option{
		opt("web.listen-address", ":2802", "Address to listen on for Falco events, health checks and metrics.",
			func(c *Config) *string { return &c.Web.ListenAddress }, hostPort),
		opt("web.config.file", "", "Prometheus web configuration file for TLS, mutual TLS and basic auth on the listener.",
			func(c *Config) *string { return &c.Web.ConfigFile }),
		opt("web.bearer-token-file", "", "File holding a bearer token that senders must present (Authorization: Bearer ...).",
			func(c *Config) *string { return &c.Web.BearerTokenFile }),
		opt("web.max-request-bytes", "4MiB", "Largest request body accepted, after gzip decompression.",
			func(c *Config) *Size { return &c.Web.MaxRequestBytes }, positive[Size]),
		opt("web.max-request-bytes-in-flight", "16MiB", "Most memory all request bodies being read take together; past it requests are answered 503 with Retry-After.",
			func(c *Config) *Size { return &c.Web.MaxRequestBytesInFlight }, positive[Size]),
		opt("web.max-events-per-request", "10000", "Most events accepted in one request.",
			func(c *Config) *int { return &c.Web.MaxEventsPerRequest }, positive[int]),
		opt("web.read-header-timeout", "10s", "Time allowed to read request headers.",
			func(c *Config) *model.Duration { return &c.Web.ReadHeaderTimeout }),
		opt("web.read-timeout", "30s", "Time allowed to read a whole request.",
			func(c *Config) *model.Duration { return &c.Web.ReadTimeout }),
		opt("web.write-timeout", "30s", "Time allowed to write a response.",
			func(c *Config) *model.Duration { return &c.Web.WriteTimeout }),
		opt("web.idle-timeout", "2m", "How long an idle keep-alive connection (Falco reuses one) stays open.",
			func(c *Config) *model.Duration { return &c.Web.IdleTimeout }),
		opt("web.ui", "true", "Serve the status page (/), the mapping playground (/playground), /api/v1/status and /api/v1/translate, behind the same authentication as ingest. They show event contents.",
			func(c *Config) *bool { return &c.Web.UI }),
		opt("alertmanager.url", "http://127.0.0.1:9093", "Alertmanager to send to; repeat for every Alertmanager of an HA cluster. dns+http://name:port follows A/AAAA records, dnssrv+http://_web._tcp.name follows SRV records.",
			func(c *Config) *[]string { return &c.Alertmanager.URLs }, eachOf(checkTarget)),
		opt("alertmanager.timeout", "10s", "Timeout of one POST to an Alertmanager.",
			func(c *Config) *model.Duration { return &c.Alertmanager.Timeout }, positive[model.Duration]),
		opt("alertmanager.queue-capacity", "10000", "Alerts held in memory per Alertmanager: the whole queue without --storage.path (when full the oldest are dropped), else the window read ahead from the durable queue.",
			func(c *Config) *int { return &c.Alertmanager.QueueCapacity }, positive[int]),
		opt("alertmanager.queue-max-bytes", "32MiB", "Bytes of alerts held in memory per Alertmanager (their encoding and a fixed overhead each), as queue-capacity bounds them in alerts.",
			func(c *Config) *Size { return &c.Alertmanager.QueueMaxBytes }, positive[Size]),
		opt("alertmanager.batch-size", "2048", "Most alerts in one POST. Large batches keep delivery ahead of a burst; Alertmanager takes thousands in one request.",
			func(c *Config) *int { return &c.Alertmanager.BatchSize }, positive[int]),
		opt("alertmanager.max-requests-in-flight", "2", "POSTs sent to one Alertmanager at once; two versions of one alert are never in flight together.",
			func(c *Config) *int { return &c.Alertmanager.MaxRequestsInFlight }, positive[int]),
		opt("alertmanager.batch-wait", "10ms", "How long a new alert waits for others to join its batch.",
			func(c *Config) *model.Duration { return &c.Alertmanager.BatchWait }),
		opt("alertmanager.min-backoff", "500ms", "First delay before retrying a failed POST; it doubles up to the maximum.",
			func(c *Config) *model.Duration { return &c.Alertmanager.MinBackoff }, positive[model.Duration]),
		opt("alertmanager.max-backoff", "10s", "Longest delay between retries.",
			func(c *Config) *model.Duration { return &c.Alertmanager.MaxBackoff }, positive[model.Duration]),
		opt("alertmanager.refresh-interval", "30s", "How often dns+ and dnssrv+ names are resolved again.",
			func(c *Config) *model.Duration { return &c.Alertmanager.RefreshInterval }, positive[model.Duration]),
		opt("alertmanager.drain-timeout", "20s", "On shutdown, how long to keep delivering queued alerts.",
			func(c *Config) *model.Duration { return &c.Alertmanager.DrainTimeout }),
		opt("mapping.file", "", "Label-mapping file; empty uses the mapping built into the binary (mapping/default.yaml).",
			func(c *Config) *string { return &c.Mapping.File }),
		opt("storage.path", "", "Directory of the durable queue; empty keeps alerts in memory only.",
			func(c *Config) *string { return &c.Storage.Path }),
		opt("storage.fsync-interval", "1s", "How often the durable queue is synced to disk; 0 syncs before every answer.",
			func(c *Config) *model.Duration { return &c.Storage.FsyncInterval }),
		opt("sensors.max-tracked", "10000", "Most Falco sensors (hostnames) whose last event time is tracked; when full, the one heard from longest ago is forgotten.",
			func(c *Config) *int { return &c.Sensors.MaxTracked }, positive[int]),
		opt("sensors.silent-after", "0", "Send a FalcoSensorSilent alert for a sensor that sent events and then nothing for this long (one FalcoSensorsSilent for all when more than 10 are); 0 turns it off.",
			func(c *Config) *model.Duration { return &c.Sensors.SilentAfter }),
		opt("storage.max-bytes", "256MiB", "Most disk space the durable queue takes; when full, storage.when-full says what gives.",
			func(c *Config) *Size { return &c.Storage.MaxBytes }, positive[Size]),
		opt("storage.when-full", "drop-oldest", "What a full durable queue does: drop-oldest deletes its oldest segment (counted), refuse answers new events 503 with Retry-After.",
			func(c *Config) *string { return &c.Storage.WhenFull }, oneOf("drop-oldest", "refuse")),
		opt("runtime.memory-limit", "0", "Go soft memory limit (like 200MiB), which makes the garbage collector work harder as memory use nears it; 0 takes GOMEMLIMIT when set, else 90% of the cgroup's memory limit, else 2 × alertmanager.queue-max-bytes + 32MiB, which keeps the RSS within 2 × queue-max-bytes + 64MiB.",
			func(c *Config) *Size { return &c.Runtime.MemoryLimit }),
		opt("source.nats.url", "", "NATS server to pull Falco events from through JetStream, as falcosidekick's NATS output publishes them; repeat for every server of a cluster. Empty: HTTP ingest only.",
			func(c *Config) *[]string { return &c.Source.NATS.URLs }, eachOf(checkNATSURL)),
		opt("source.nats.stream", "", "JetStream stream holding the events (one capturing falcosidekick's subjects, falco.>); needed with source.nats.url.",
			func(c *Config) *string { return &c.Source.NATS.Stream }, natsName),
		opt("source.nats.subject", "falco.>", "Subjects of the stream to consume; falcosidekick publishes on falco.<priority>.<rule>.",
			func(c *Config) *string { return &c.Source.NATS.Subject }, natsSubject),
		opt("source.nats.consumer", "falco-am-bridge", "Durable consumer name; bridges with the same name share the events, each taken by one of them.",
			func(c *Config) *string { return &c.Source.NATS.Consumer }, natsName, nonEmpty("a durable consumer needs a name")),
		opt("source.nats.credentials-file", "", "NATS credentials file (.creds: a user JWT and its NKey seed).",
			func(c *Config) *string { return &c.Source.NATS.CredentialsFile }),
		opt("source.nats.nkey-seed-file", "", "File holding an NKey seed (SU...) to authenticate to NATS with.",
			func(c *Config) *string { return &c.Source.NATS.NKeySeedFile }),
		opt("source.nats.tls.ca-file", "", "CA certificates to verify the NATS servers with, instead of the system's.",
			func(c *Config) *string { return &c.Source.NATS.TLS.CAFile }),
		opt("source.nats.tls.cert-file", "", "Client certificate for NATS (mutual TLS), with source.nats.tls.key_file.",
			func(c *Config) *string { return &c.Source.NATS.TLS.CertFile }),
		opt("source.nats.tls.key-file", "", "Private key of the client certificate for NATS.",
			func(c *Config) *string { return &c.Source.NATS.TLS.KeyFile }),
		opt("source.nats.max-ack-pending", "1000", "Events taken from the stream and not yet safe (spooled, or done by every Alertmanager queue), over all the bridges sharing the consumer; past it the stream holds the rest. Without --storage.path, at most alertmanager.queue_capacity.",
			func(c *Config) *int { return &c.Source.NATS.MaxAckPending }, positive[int]),
		opt("source.nats.ack-wait", "30s", "How long NATS waits for a bridge to acknowledge an event before it gives it to another; a bridge renews it for the events it still holds.",
			func(c *Config) *model.Duration { return &c.Source.NATS.AckWait }, positive[model.Duration]),
		opt("log.level", "info", "Log level: debug, info, warn or error.",
			func(c *Config) *string { return &c.Log.Level }, oneOf("debug", "info", "warn", "error")),
		opt("log.format", "logfmt", "Log format: logfmt or json.",
			func(c *Config) *string { return &c.Log.Format }, oneOf("logfmt", "json")),
	}
}

// hostPort checks an address to listen on.
func hostPort(s *string) error {
	if _, _, err := net.SplitHostPort(*s); err != nil {
		return fmt.Errorf("%q is not host:port: %w", *s, err)
	}
	return nil
}

// positive checks that a number, a duration or a size is above 0.
func positive[T int | model.Duration | Size](v *T) error {
	if *v <= 0 {
		return fmt.Errorf("%v must be greater than 0", *v)
	}
	return nil
}

// oneOf checks that a word is one of allowed, in any case, and keeps it in
// lower case.
func oneOf(allowed ...string) func(*string) error {
	return func(s *string) error {
		v := strings.ToLower(strings.TrimSpace(*s))
		if !slices.Contains(allowed, v) {
			return fmt.Errorf("%q is not one of %s", *s, strings.Join(allowed, ", "))
		}
		*s = v
		return nil
	}
}

func nonEmpty(msg string) func(*string) error {
	return func(s *string) error {
		if *s == "" {
			return errors.New(msg)
		}
		return nil
	}
}

// eachOf checks every entry of a list, naming the ones it refuses by index.
func eachOf(check func(string) error) func(*[]string) error {
	return func(l *[]string) error {
		var errs []error
		for i, s := range *l {
			if err := check(s); err != nil {
				errs = append(errs, fmt.Errorf("[%d]: %w", i, err))
			}
		}
		return errors.Join(errs...)
	}
}

func checkTarget(s string) error {
	_, err := ParseTarget(s)
	return err
}

func checkNATSURL(s string) error {
	_, err := ParseNATSURL(s)
	return err
}

// natsName checks a stream or consumer name: no spaces, dots, wildcards or
// path separators.
func natsName(s *string) error {
	if strings.ContainsAny(*s, " \t\r\n.*>/\\") {
		return fmt.Errorf("%q is not a NATS name: no spaces, '.', '*', '>', '/' or '\\'", *s)
	}
	return nil
}

// natsSubject checks a subject filter such as falco.> or falco.critical.*.
func natsSubject(s *string) error {
	tokens := strings.Split(*s, ".")
	for i, t := range tokens {
		switch {
		case t == "" || strings.ContainsAny(t, " \t\r\n"):
			return fmt.Errorf("%q is not a NATS subject: empty token or white space", *s)
		case t == ">" && i != len(tokens)-1:
			return fmt.Errorf("%q is not a NATS subject: '>' must be the last token", *s)
		case len(t) > 1 && strings.ContainsAny(t, "*>"):
			return fmt.Errorf("%q is not a NATS subject: a wildcard must be a whole token", *s)
		}
	}
	return nil
}

// Setting describes one option for documentation.
type Setting struct {
	Flag, Key, Env, Default, Help string
}

// Settings lists every option; the README's reference and the reload
// tests are checked against it.
func Settings() []Setting {
	out := []Setting{{Flag: ConfigFileFlag, Env: envName(ConfigFileFlag), Help: "YAML configuration file; every other flag can also be set there."}}
	for _, o := range allOptions() {
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
	for _, o := range allOptions() {
		help := o.help + " (env " + envName(o.key) + ")"
		if o.list() {
			var def []string
			if o.def != "" {
				def = []string{o.def}
			}
			fs.StringArray(o.flag, def, help)
			continue
		}
		fs.Var(&textValue{s: o.def, typ: o.typeName()}, o.flag, help)
		fs.Lookup(o.flag).DefValue = o.def
		if o.typeName() == "boolean" {
			fs.Lookup(o.flag).NoOptDefVal = "true"
		}
	}
}

// textValue is a flag kept as its text, which names its type in --help;
// Load decodes it, with errors naming the key, as it decodes the file.
type textValue struct{ s, typ string }

func (v *textValue) String() string     { return v.s }
func (v *textValue) Set(s string) error { v.s = s; return nil }
func (v *textValue) Type() string       { return v.typ }
