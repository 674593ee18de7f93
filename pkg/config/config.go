// Package config owns falco-am-bridge's settings: one typed tree, read from
// flags, FALCO_AM_BRIDGE_* environment variables and a YAML file (in that
// order of precedence), strictly validated. The file is parsed once; each
// setting is decoded once, from the source that wins, into its typed
// field. Viper, which says which source wins, is used here and nowhere
// else.
package config

import (
	"fmt"
	"net/url"
	"strings"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// Config is everything falco-am-bridge serve needs: one typed tree, which
// is also the list of settings. Each field that is not a section is one
// setting, and its tags say all of it: yaml its key (dotted from the root
// in the environment and in messages), flag its flag when that is not the
// key with dashes (flag:"-": file only), default, check (what its value
// must be: see checks), reload:"restart" when a reload cannot apply it,
// because what it configures is built once at start, and help.
type Config struct {
	// File is the configuration file read, or "".
	File         string       `yaml:"-"`
	Web          Web          `yaml:"web"`
	Alertmanager Alertmanager `yaml:"alertmanager"`
	Mapping      Mapping      `yaml:"mapping"`
	Storage      Storage      `yaml:"storage"`
	Sensors      Sensors      `yaml:"sensors"`
	Source       Source       `yaml:"source"`
	Log          Log          `yaml:"log"`
	Runtime      Runtime      `yaml:"runtime"`
}

// Web is the HTTP side that Falco talks to.
type Web struct {
	ListenAddress   string `yaml:"listen_address" default:":2802" check:"hostport" reload:"restart" help:"Address to listen on for Falco events, health checks and metrics."`
	ConfigFile      string `yaml:"config_file" flag:"web.config.file" reload:"restart" help:"Prometheus web configuration file for TLS, mutual TLS and basic auth on the listener."`
	BearerTokenFile string `yaml:"bearer_token_file" help:"File holding a bearer token that senders must present (Authorization: Bearer ...)."`
	MaxRequestBytes Size   `yaml:"max_request_bytes" default:"4MiB" check:"positive" reload:"restart" help:"Largest request body accepted, after gzip decompression."`
	// MaxRequestBytesInFlight bounds the request bodies in memory at once.
	MaxRequestBytesInFlight Size           `yaml:"max_request_bytes_in_flight" default:"16MiB" check:"positive" reload:"restart" help:"Most memory all request bodies being read take together; past it requests are answered 503 with Retry-After."`
	MaxEventsPerRequest     int            `yaml:"max_events_per_request" default:"10000" check:"positive" reload:"restart" help:"Most events accepted in one request."`
	ReadHeaderTimeout       model.Duration `yaml:"read_header_timeout" default:"10s" reload:"restart" help:"Time allowed to read request headers."`
	ReadTimeout             model.Duration `yaml:"read_timeout" default:"30s" reload:"restart" help:"Time allowed to read a whole request."`
	WriteTimeout            model.Duration `yaml:"write_timeout" default:"30s" reload:"restart" help:"Time allowed to write a response."`
	IdleTimeout             model.Duration `yaml:"idle_timeout" default:"2m" reload:"restart" help:"How long an idle keep-alive connection (Falco reuses one) stays open."`
	UI                      bool           `yaml:"ui" default:"true" reload:"restart" help:"Serve the status page (/), the mapping playground (/playground), /api/v1/status and /api/v1/translate, behind the same authentication as ingest. They show event contents."`
}

// Alertmanager is where alerts go and how.
type Alertmanager struct {
	// URLs as given: http(s)://host:port[/prefix], or dns+http(s)://name:port
	// and dnssrv+http(s)://name for DNS discovery.
	URLs []string `yaml:"urls" flag:"alertmanager.url" default:"http://127.0.0.1:9093" check:"targets" help:"Alertmanager to send to; repeat for every Alertmanager of an HA cluster. dns+http://name:port follows A/AAAA records, dnssrv+http://_web._tcp.name follows SRV records."`
	// Targets are the URLs parsed.
	Targets       []Target       `yaml:"-"`
	Timeout       model.Duration `yaml:"timeout" default:"10s" check:"positive" help:"Timeout of one POST to an Alertmanager."`
	QueueCapacity int            `yaml:"queue_capacity" default:"10000" check:"positive" help:"Alerts held in memory per Alertmanager: the whole queue without --storage.path (when full the oldest are dropped), else the window read ahead from the durable queue."`
	QueueMaxBytes Size           `yaml:"queue_max_bytes" default:"32MiB" check:"positive" help:"Bytes of alerts held in memory per Alertmanager (their encoding and a fixed overhead each), as queue-capacity bounds them in alerts."`
	BatchSize     int            `yaml:"batch_size" default:"2048" check:"positive" help:"Most alerts in one POST. Large batches keep delivery ahead of a burst; Alertmanager takes thousands in one request."`
	// MaxRequestsInFlight is the number of POSTs to one Alertmanager at once.
	MaxRequestsInFlight int            `yaml:"max_requests_in_flight" default:"2" check:"positive" help:"POSTs sent to one Alertmanager at once; two versions of one alert are never in flight together."`
	BatchWait           model.Duration `yaml:"batch_wait" default:"10ms" help:"How long a new alert waits for others to join its batch."`
	MinBackoff          model.Duration `yaml:"min_backoff" default:"500ms" check:"positive" help:"First delay before retrying a failed POST; it doubles up to the maximum."`
	MaxBackoff          model.Duration `yaml:"max_backoff" default:"10s" check:"positive" help:"Longest delay between retries."`
	RefreshInterval     model.Duration `yaml:"refresh_interval" default:"30s" check:"positive" help:"How often dns+ and dnssrv+ names are resolved again."`
	DrainTimeout        model.Duration `yaml:"drain_timeout" default:"20s" help:"On shutdown, how long to keep delivering queued alerts."`
	// HTTPConfig is Prometheus's HTTP client configuration: TLS,
	// authentication, proxy, headers. File only.
	HTTPConfig commoncfg.HTTPClientConfig `yaml:"http_config" flag:"-"`
}

// Discovery says how a target's addresses are found.
type Discovery int

// Ways to find an Alertmanager.
const (
	Static Discovery = iota // the URL as it is
	DNSA                    // A/AAAA records of the host, one target per address
	DNSSRV                  // SRV records of the host, one target per record
)

// Target is one entry of alertmanager.urls, parsed.
type Target struct {
	Discovery Discovery
	// URL is the base URL; for DNS discovery its host is the name to
	// resolve.
	URL *url.URL
}

// Mapping says where the label mapping comes from.
type Mapping struct {
	File string `yaml:"file" help:"Label-mapping file; empty uses the mapping built into the binary (mapping/default.yaml)."`
}

// Storage is the durable queue.
type Storage struct {
	Path          string         `yaml:"path" reload:"restart" help:"Directory of the durable queue; empty keeps alerts in memory only."`
	FsyncInterval model.Duration `yaml:"fsync_interval" default:"1s" reload:"restart" help:"How often the durable queue is synced to disk; 0 syncs before every answer."`
	MaxBytes      Size           `yaml:"max_bytes" default:"256MiB" check:"positive" reload:"restart" help:"Most disk space the durable queue takes; when full, storage.when-full says what gives."`
	WhenFull      string         `yaml:"when_full" default:"drop-oldest" check:"oneof=drop-oldest|refuse" reload:"restart" help:"What a full durable queue does: drop-oldest deletes its oldest segment (counted), refuse answers new events 503 with Retry-After."`
}

// Sensors is the tracking of the Falco sensors that send events.
type Sensors struct {
	MaxTracked  int            `yaml:"max_tracked" default:"10000" check:"positive" reload:"restart" help:"Most Falco sensors (hostnames) whose last event time is tracked; when full, the one heard from longest ago is forgotten."`
	SilentAfter model.Duration `yaml:"silent_after" default:"0" reload:"restart" help:"Send a FalcoSensorSilent alert for a sensor that sent events and then nothing for this long (one FalcoSensorsSilent for all when more than 10 are); 0 turns it off."`
}

// Source is where events come from besides HTTP ingest.
type Source struct {
	NATS NATS `yaml:"nats" reload:"restart"`
}

// NATS is a JetStream consumer that the bridge pulls Falco events from:
// the messages falcosidekick's NATS output publishes, kept in a stream.
type NATS struct {
	// URLs of the NATS servers; empty: no JetStream source.
	URLs     []string `yaml:"urls" flag:"source.nats.url" check:"natsurls" help:"NATS server to pull Falco events from through JetStream, as falcosidekick's NATS output publishes them; repeat for every server of a cluster. Empty: HTTP ingest only."`
	Stream   string   `yaml:"stream" check:"natsname" help:"JetStream stream holding the events (one capturing falcosidekick's subjects, falco.>); needed with source.nats.url."`
	Subject  string   `yaml:"subject" default:"falco.>" check:"natssubject" help:"Subjects of the stream to consume; falcosidekick publishes on falco.<priority>.<rule>."`
	Consumer string   `yaml:"consumer" default:"falco-am-bridge" check:"natsname,required" help:"Durable consumer name; bridges with the same name share the events, each taken by one of them."`
	// CredentialsFile is a NATS .creds file (JWT and NKey seed);
	// NKeySeedFile an NKey seed alone. At most one of them.
	CredentialsFile string  `yaml:"credentials_file" help:"NATS credentials file (.creds: a user JWT and its NKey seed)."`
	NKeySeedFile    string  `yaml:"nkey_seed_file" help:"File holding an NKey seed (SU...) to authenticate to NATS with."`
	TLS             NATSTLS `yaml:"tls"`
	// MaxAckPending bounds the events taken and not yet acknowledged, over
	// every bridge of the consumer: the back-pressure when Alertmanager is
	// slow or away.
	MaxAckPending int `yaml:"max_ack_pending" default:"1000" check:"positive" help:"Events taken from the stream and not yet safe (spooled, or done by every Alertmanager queue), over all the bridges sharing the consumer; past it the stream holds the rest. Without --storage.path, at most alertmanager.queue_capacity."`
	// AckWait is how long the server waits for an acknowledgement before
	// it delivers an event again (to any bridge of the consumer).
	AckWait model.Duration `yaml:"ack_wait" default:"30s" check:"positive" help:"How long NATS waits for a bridge to acknowledge an event before it gives it to another; a bridge renews it for the events it still holds."`
}

// NATSTLS is the TLS to the NATS servers: CAFile verifies them; CertFile
// and KeyFile are a client certificate, for mutual TLS.
type NATSTLS struct {
	CAFile   string `yaml:"ca_file" help:"CA certificates to verify the NATS servers with, instead of the system's."`
	CertFile string `yaml:"cert_file" help:"Client certificate for NATS (mutual TLS), with source.nats.tls.key_file."`
	KeyFile  string `yaml:"key_file" help:"Private key of the client certificate for NATS."`
}

// Enabled says whether a JetStream source is configured.
func (n NATS) Enabled() bool { return len(n.URLs) > 0 }

// Log configures logging.
type Log struct {
	Level  string `yaml:"level" default:"info" check:"oneof=debug|info|warn|error" reload:"restart" help:"Log level: debug, info, warn or error."`
	Format string `yaml:"format" default:"logfmt" check:"oneof=logfmt|json" reload:"restart" help:"Log format: logfmt or json."`
}

// Runtime is the Go runtime's settings.
type Runtime struct {
	// MemoryLimit is the Go soft memory limit in bytes; 0 leaves it to
	// GOMEMLIMIT or, without it, to the cgroup's memory limit.
	MemoryLimit Size `yaml:"memory_limit" default:"0" reload:"restart" help:"Go soft memory limit (like 200MiB), which makes the garbage collector work harder as memory use nears it; 0 takes GOMEMLIMIT when set, else 90% of the cgroup's memory limit, else 2 × alertmanager.queue-max-bytes + 32MiB, which keeps the RSS within 2 × queue-max-bytes + 64MiB."`
}

// ParseTarget parses one alertmanager.urls entry.
func ParseTarget(s string) (Target, error) {
	t := Target{Discovery: Static}
	rest := s
	switch {
	case strings.HasPrefix(s, "dnssrv+"):
		t.Discovery, rest = DNSSRV, strings.TrimPrefix(s, "dnssrv+")
	case strings.HasPrefix(s, "dns+"):
		t.Discovery, rest = DNSA, strings.TrimPrefix(s, "dns+")
	}
	u, err := url.Parse(rest)
	if err != nil {
		return t, fmt.Errorf("%q is not a URL: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return t, fmt.Errorf("%q is not an http(s) URL", s)
	}
	if u.Host == "" || u.Hostname() == "" {
		return t, fmt.Errorf("%q has no host", s)
	}
	if u.User != nil {
		return t, fmt.Errorf("%q holds credentials: set them in alertmanager.http_config (basic_auth) so they are not logged", redactURL(u))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return t, fmt.Errorf("%q: a query or fragment is not allowed in an Alertmanager URL", s)
	}
	if t.Discovery == DNSA && u.Port() == "" {
		return t, fmt.Errorf("%q: dns+ needs a port, as A/AAAA records carry none", s)
	}
	if t.Discovery == DNSSRV && u.Port() != "" {
		return t, fmt.Errorf("%q: dnssrv+ takes the port from the SRV records; remove the port", s)
	}
	t.URL = u
	return t, nil
}

// ParseNATSURL checks one source.nats.urls entry.
func ParseNATSURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %w", s, err)
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return nil, fmt.Errorf("%q is not a nats://, tls://, ws:// or wss:// URL", redactURL(u))
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%q has no host", redactURL(u))
	}
	if u.User != nil {
		return nil, fmt.Errorf("%q holds credentials: use source.nats.credentials_file or source.nats.nkey_seed_file so they are not logged", redactURL(u))
	}
	return u, nil
}

func redactURL(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.UserPassword("xxxxx", "xxxxx")
	}
	return c.String()
}
