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

// Config is everything falco-am-bridge serve needs: one typed tree, whose
// yaml tags are the keys of the file (and, dotted, of the environment and
// the flags). A setting that a reload cannot apply, because what it
// configures is built once at start, is tagged reload:"restart";
// RestartOnly finds it by that tag.
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
	ListenAddress   string `yaml:"listen_address" reload:"restart"`
	ConfigFile      string `yaml:"config_file" reload:"restart"` // Prometheus web config: TLS, mTLS, basic auth
	BearerTokenFile string `yaml:"bearer_token_file"`
	MaxRequestBytes Size   `yaml:"max_request_bytes" reload:"restart"`
	// MaxRequestBytesInFlight bounds the request bodies in memory at once.
	MaxRequestBytesInFlight Size           `yaml:"max_request_bytes_in_flight" reload:"restart"`
	MaxEventsPerRequest     int            `yaml:"max_events_per_request" reload:"restart"`
	ReadHeaderTimeout       model.Duration `yaml:"read_header_timeout" reload:"restart"`
	ReadTimeout             model.Duration `yaml:"read_timeout" reload:"restart"`
	WriteTimeout            model.Duration `yaml:"write_timeout" reload:"restart"`
	IdleTimeout             model.Duration `yaml:"idle_timeout" reload:"restart"`
	UI                      bool           `yaml:"ui" reload:"restart"` // status page, playground and their APIs
}

// Alertmanager is where alerts go and how.
type Alertmanager struct {
	// URLs as given: http(s)://host:port[/prefix], or dns+http(s)://name:port
	// and dnssrv+http(s)://name for DNS discovery.
	URLs []string `yaml:"urls"`
	// Targets are the URLs parsed.
	Targets       []Target       `yaml:"-"`
	Timeout       model.Duration `yaml:"timeout"`
	QueueCapacity int            `yaml:"queue_capacity"`
	QueueMaxBytes Size           `yaml:"queue_max_bytes"`
	BatchSize     int            `yaml:"batch_size"`
	// MaxRequestsInFlight is the number of POSTs to one Alertmanager at once.
	MaxRequestsInFlight int            `yaml:"max_requests_in_flight"`
	BatchWait           model.Duration `yaml:"batch_wait"`
	MinBackoff          model.Duration `yaml:"min_backoff"`
	MaxBackoff          model.Duration `yaml:"max_backoff"`
	RefreshInterval     model.Duration `yaml:"refresh_interval"`
	DrainTimeout        model.Duration `yaml:"drain_timeout"`
	// HTTPConfig is Prometheus's HTTP client configuration: TLS,
	// authentication, proxy, headers. File only.
	HTTPConfig commoncfg.HTTPClientConfig `yaml:"http_config"`
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
	File string `yaml:"file"` // "" means the mapping built into the binary
}

// Storage is the durable queue.
type Storage struct {
	Path          string         `yaml:"path" reload:"restart"` // "" means memory only
	FsyncInterval model.Duration `yaml:"fsync_interval" reload:"restart"`
	MaxBytes      Size           `yaml:"max_bytes" reload:"restart"`
	WhenFull      string         `yaml:"when_full" reload:"restart"` // drop-oldest or refuse
}

// Sensors is the tracking of the Falco sensors that send events.
type Sensors struct {
	MaxTracked  int            `yaml:"max_tracked" reload:"restart"`
	SilentAfter model.Duration `yaml:"silent_after" reload:"restart"` // 0: no FalcoSensorSilent alert
}

// Source is where events come from besides HTTP ingest.
type Source struct {
	NATS NATS `yaml:"nats" reload:"restart"`
}

// NATS is a JetStream consumer that the bridge pulls Falco events from:
// the messages falcosidekick's NATS output publishes, kept in a stream.
type NATS struct {
	// URLs of the NATS servers; empty: no JetStream source.
	URLs     []string `yaml:"urls"`
	Stream   string   `yaml:"stream"`
	Subject  string   `yaml:"subject"`  // filter subject of the consumer
	Consumer string   `yaml:"consumer"` // durable name; bridges with the same one share the events
	// CredentialsFile is a NATS .creds file (JWT and NKey seed);
	// NKeySeedFile an NKey seed alone. At most one of them.
	CredentialsFile string  `yaml:"credentials_file"`
	NKeySeedFile    string  `yaml:"nkey_seed_file"`
	TLS             NATSTLS `yaml:"tls"`
	// MaxAckPending bounds the events taken and not yet acknowledged, over
	// every bridge of the consumer: the back-pressure when Alertmanager is
	// slow or away.
	MaxAckPending int `yaml:"max_ack_pending"`
	// AckWait is how long the server waits for an acknowledgement before
	// it delivers an event again (to any bridge of the consumer).
	AckWait model.Duration `yaml:"ack_wait"`
}

// NATSTLS is the TLS to the NATS servers: CAFile verifies them; CertFile
// and KeyFile are a client certificate, for mutual TLS.
type NATSTLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled says whether a JetStream source is configured.
func (n NATS) Enabled() bool { return len(n.URLs) > 0 }

// Log configures logging.
type Log struct {
	Level  string `yaml:"level" reload:"restart"`
	Format string `yaml:"format" reload:"restart"`
}

// Runtime is the Go runtime's settings.
type Runtime struct {
	// MemoryLimit is the Go soft memory limit in bytes; 0 leaves it to
	// GOMEMLIMIT or, without it, to the cgroup's memory limit.
	MemoryLimit Size `yaml:"memory_limit" reload:"restart"`
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
