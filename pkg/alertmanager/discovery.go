package alertmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/metric"
)

// SourceKind says how a Source's Alertmanagers are found.
type SourceKind int

// The kinds of Source.
const (
	SourceStatic SourceKind = iota // the URL itself
	SourceDNSA                     // one Alertmanager per A/AAAA record of the URL's host
	SourceDNSSRV                   // one Alertmanager per SRV record of the URL's host
)

// Source is one configured Alertmanager, or a DNS name standing for several.
type Source struct {
	Kind SourceKind
	URL  *url.URL
}

// Resolver looks names up; net.DefaultResolver is one, tests use their own.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// Discovery keeps a Manager's targets in step with its sources: static
// URLs as they are, DNS names resolved now and every interval, each
// address becoming a target with its own queue. When a name fails to
// resolve, or resolves to nothing, its last known addresses are kept.
type Discovery struct {
	resolver Resolver
	manager  *Manager
	logger   *slog.Logger
	failures prometheus.Counter

	wake    chan struct{} // SetSources asks Run to resolve at once
	mu      sync.Mutex
	sources []Source
	last    map[string][]*url.URL // by source URL: the last good resolution
}

// NewDiscovery returns a Discovery for the sources. resolver may be nil for
// net.DefaultResolver.
func NewDiscovery(sources []Source, resolver Resolver, m *Manager, logger *slog.Logger, reg prometheus.Registerer) *Discovery {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	d := &Discovery{
		sources: sources, resolver: resolver, manager: m, logger: logger,
		failures: metric.With(reg, subsystem).Counter("discovery_failures_total",
			"DNS lookups of Alertmanager names that failed; the last known addresses were kept."),
		last: map[string][]*url.URL{},
		wake: make(chan struct{}, 1),
	}
	return d
}

// Dynamic reports whether any source needs resolving again over time.
func (d *Discovery) Dynamic() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.ContainsFunc(d.sources, func(s Source) bool { return s.Kind != SourceStatic })
}

// SetSources replaces the sources, as a reload does. Static URLs only
// become the targets at once; with DNS names among them, Run resolves
// them right away, and until then the targets stay. Names that stay keep
// their last good resolution.
func (d *Discovery) SetSources(sources []Source) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sources = sources
	keep := make(map[string][]*url.URL, len(sources))
	static := make([]*url.URL, 0, len(sources))
	for _, s := range sources {
		if s.Kind == SourceStatic {
			static = append(static, s.URL)
		}
		if urls, ok := d.last[s.Kind.prefix()+s.URL.String()]; ok {
			keep[s.Kind.prefix()+s.URL.String()] = urls
		}
	}
	d.last = keep
	if len(static) == len(sources) {
		// Nothing to resolve: the targets are these, now.
		d.manager.SetTargets(static)
		return
	}
	// The names are resolved by Run, off the caller's path; until then
	// the targets stay as they are.
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (k SourceKind) prefix() string {
	switch k {
	case SourceDNSA:
		return "dns+"
	case SourceDNSSRV:
		return "dnssrv+"
	default:
		return ""
	}
}

// Refresh resolves every source once and sets the Manager's targets. It
// returns the lookup errors, joined; targets are set either way.
func (d *Discovery) Refresh(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var targets []*url.URL
	var errs []error
	for _, s := range d.sources {
		if s.Kind == SourceStatic {
			targets = append(targets, s.URL)
			continue
		}
		key := s.Kind.prefix() + s.URL.String()
		urls, err := d.resolve(ctx, s)
		if err != nil {
			d.failures.Inc()
			errs = append(errs, err)
			urls = d.last[key]
		} else {
			d.last[key] = urls
		}
		targets = append(targets, urls...)
	}
	d.manager.SetTargets(targets)
	return errors.Join(errs...)
}

// Run refreshes every interval until ctx ends, while any source is a DNS
// name, and at once when SetSources brings names. interval is asked
// again before every wait, so a reload can change it.
func (d *Discovery) Run(ctx context.Context, interval func() time.Duration) {
	for {
		t := time.NewTimer(interval())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-d.wake:
			// New sources: resolve them now, then wait the interval,
			// which may be new too.
			t.Stop()
		case <-t.C:
			if !d.Dynamic() {
				continue
			}
		}
		if err := d.Refresh(ctx); err != nil && ctx.Err() == nil {
			d.logger.Warn("resolving Alertmanagers failed; keeping the last known addresses", "err", err)
		}
	}
}

func (d *Discovery) resolve(ctx context.Context, s Source) ([]*url.URL, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	host := s.URL.Hostname()
	var hostPorts []string
	switch s.Kind {
	case SourceDNSA:
		addrs, err := d.resolver.LookupIPAddr(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("looking up %s: %w", host, err)
		}
		for _, a := range addrs {
			hostPorts = append(hostPorts, net.JoinHostPort(a.IP.String(), s.URL.Port()))
		}
	case SourceDNSSRV:
		_, srvs, err := d.resolver.LookupSRV(ctx, "", "", host)
		if err != nil {
			return nil, fmt.Errorf("looking up SRV %s: %w", host, err)
		}
		for _, r := range srvs {
			hostPorts = append(hostPorts, net.JoinHostPort(strings.TrimSuffix(r.Target, "."), strconv.Itoa(int(r.Port))))
		}
	}
	if len(hostPorts) == 0 {
		// Treated as a failure: an Alertmanager StatefulSet restarting
		// all its pods must not cost the queues of the old addresses.
		return nil, fmt.Errorf("%s resolves to no address", host)
	}
	slices.Sort(hostPorts)
	hostPorts = slices.Compact(hostPorts)
	urls := make([]*url.URL, 0, len(hostPorts))
	for _, hp := range hostPorts {
		u := *s.URL
		u.Host = hp
		urls = append(urls, &u)
	}
	return urls, nil
}
