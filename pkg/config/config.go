// Package config owns falco-am-bridge's settings: one typed tree, read from
// flags, FALCO_AM_BRIDGE_* environment variables and a YAML file (in that
// order of precedence), strictly validated. Viper is used here and nowhere
// else.
package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"
)

// Config is everything falco-am-bridge serve needs. A setting that a
// reload cannot apply, because what it configures is built once at start,
// is tagged reload:"restart"; RestartOnly finds it by that tag, with its
// key derived from the field names (Web.ListenAddress: web.listen_address).
type Config struct {
	// File is the configuration file read, or "".
	File         string
	Web          Web
	Alertmanager Alertmanager
	Mapping      Mapping
	Storage      Storage
	Sensors      Sensors
	Source       Source
	Log          Log
	Runtime      Runtime
}

// Web is the HTTP side that Falco talks to.
type Web struct {
	ListenAddress   string `reload:"restart"`
	ConfigFile      string `reload:"restart"` // Prometheus web config: TLS, mTLS, basic auth
	BearerTokenFile string
	MaxRequestBytes int64 `reload:"restart"`
	// MaxRequestBytesInFlight bounds the request bodies in memory at once.
	MaxRequestBytesInFlight int64         `reload:"restart"`
	MaxEventsPerRequest     int           `reload:"restart"`
	ReadHeaderTimeout       time.Duration `reload:"restart"`
	ReadTimeout             time.Duration `reload:"restart"`
	WriteTimeout            time.Duration `reload:"restart"`
	IdleTimeout             time.Duration `reload:"restart"`
	UI                      bool          `reload:"restart"` // status page, playground and their APIs
}

// Alertmanager is where alerts go and how.
type Alertmanager struct {
	// URLs as given: http(s)://host:port[/prefix], or dns+http(s)://name:port
	// and dnssrv+http(s)://name for DNS discovery.
	URLs          []string
	Targets       []Target
	Timeout       time.Duration
	QueueCapacity int
	QueueMaxBytes int64
	BatchSize     int
	// MaxRequestsInFlight is the number of POSTs to one Alertmanager at once.
	MaxRequestsInFlight int
	BatchWait           time.Duration
	MinBackoff          time.Duration
	MaxBackoff          time.Duration
	RefreshInterval     time.Duration
	DrainTimeout        time.Duration
	HTTPConfig          commoncfg.HTTPClientConfig
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
	File string // "" means the mapping built into the binary
}

// Storage is the durable queue.
type Storage struct {
	Path          string        `reload:"restart"` // "" means memory only
	FsyncInterval time.Duration `reload:"restart"`
	MaxBytes      int64         `reload:"restart"`
	WhenFull      string        `reload:"restart"` // drop-oldest or refuse
}

// Sensors is the tracking of the Falco sensors that send events.
type Sensors struct {
	MaxTracked  int           `reload:"restart"`
	SilentAfter time.Duration `reload:"restart"` // 0: no FalcoSensorSilent alert
}

// Source is where events come from besides HTTP ingest.
type Source struct {
	NATS NATS `reload:"restart"`
}

// NATS is a JetStream consumer that the bridge pulls Falco events from:
// the messages falcosidekick's NATS output publishes, kept in a stream.
type NATS struct {
	// URLs of the NATS servers; empty: no JetStream source.
	URLs     []string
	Stream   string
	Subject  string // filter subject of the consumer
	Consumer string // durable name; bridges with the same one share the events
	// CredentialsFile is a NATS .creds file (JWT and NKey seed);
	// NKeySeedFile an NKey seed alone. At most one of them.
	CredentialsFile string
	NKeySeedFile    string
	TLSCAFile       string
	TLSCertFile     string
	TLSKeyFile      string
	// MaxAckPending bounds the events taken and not yet acknowledged, over
	// every bridge of the consumer: the back-pressure when Alertmanager is
	// slow or away.
	MaxAckPending int
	// AckWait is how long the server waits for an acknowledgement before
	// it delivers an event again (to any bridge of the consumer).
	AckWait time.Duration
}

// Enabled says whether a JetStream source is configured.
func (n NATS) Enabled() bool { return len(n.URLs) > 0 }

// Log configures logging.
type Log struct {
	Level  string `reload:"restart"`
	Format string `reload:"restart"`
}

// Runtime is the Go runtime's settings.
type Runtime struct {
	// MemoryLimit is the Go soft memory limit in bytes; 0 leaves it to
	// GOMEMLIMIT or, without it, to the cgroup's memory limit.
	MemoryLimit int64 `reload:"restart"`
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
