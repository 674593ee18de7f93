// Package app wires falco-am-bridge together: configuration, mapping,
// Alertmanager senders and the HTTP server. It never touches os/signal or
// os.Exit, so tests run the whole bridge in-process.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alertmanager"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/config"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/server"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/storage"
)

// App is a running bridge.
type App struct {
	cfg      *config.Config
	logger   *slog.Logger
	registry *prometheus.Registry
	mapping  atomic.Pointer[mapping.Mapping]
	manager  *alertmanager.Manager
	discover *alertmanager.Discovery
	store    *storage.Store // nil without --storage.path
	metrics  *metrics
	token    atomic.Pointer[string]
	ln       net.Listener
	srv      *http.Server
	reloadMu sync.Mutex
	ui       *uiState // status page: recent events, last reload
}

// Options are what tests change; the zero value is what serve uses.
type Options struct {
	// Resolver resolves dns+ and dnssrv+ Alertmanager names; nil means
	// the system's.
	Resolver alertmanager.Resolver
}

// New builds everything that can fail and starts listening, so that Addr
// is known; Run serves.
func New(cfg *config.Config, logger *slog.Logger) (*App, error) {
	return NewWithOptions(cfg, logger, Options{})
}

// NewWithOptions is New with test seams.
func NewWithOptions(cfg *config.Config, logger *slog.Logger, opts Options) (*App, error) {
	a := &App{cfg: cfg, logger: logger, registry: prometheus.NewRegistry()}
	a.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versionCollector(),
	)
	a.metrics = newMetrics(a.registry)
	a.initUI()

	m, err := LoadMapping(cfg.Mapping.File)
	if err != nil {
		return nil, err
	}
	a.mapping.Store(m)
	if err := a.loadToken(); err != nil {
		return nil, err
	}

	httpClient, err := commoncfg.NewClientFromConfig(cfg.Alertmanager.HTTPConfig, "alertmanager",
		commoncfg.WithUserAgent(userAgent()))
	if err != nil {
		return nil, fmt.Errorf("alertmanager.http_config: %w", err)
	}
	a.manager = alertmanager.NewManager(alertmanager.Options{
		QueueCapacity: cfg.Alertmanager.QueueCapacity,
		BatchSize:     cfg.Alertmanager.BatchSize,
		BatchWait:     cfg.Alertmanager.BatchWait,
		Timeout:       cfg.Alertmanager.Timeout,
		MinBackoff:    cfg.Alertmanager.MinBackoff,
		MaxBackoff:    cfg.Alertmanager.MaxBackoff,
		HTTPClient:    httpClient,
		UserAgent:     userAgent(),
	}, logger, a.registry)
	a.discover = alertmanager.NewDiscovery(sources(cfg.Alertmanager.Targets), opts.Resolver, a.manager, logger, a.registry)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err = a.discover.Refresh(ctx)
	cancel()
	if err != nil {
		// Not fatal: the names are resolved again every refresh interval.
		logger.Error("resolving Alertmanagers failed", "err", err)
	}
	if cfg.Storage.Path != "" {
		if err := a.openStorage(); err != nil {
			a.abort()
			return nil, err
		}
	}

	handler := server.New(server.Options{
		MaxRequestBytes:     cfg.Web.MaxRequestBytes,
		MaxEventsPerRequest: cfg.Web.MaxEventsPerRequest,
		BearerToken:         func() string { return *a.token.Load() },
	}, server.Deps{
		Logger:   logger,
		Pipeline: a,
		Ready:    a.ready,
		Reload:   a.Reload,
		Gatherer: a.registry,
		Registry: a.registry,
		UI:       a.uiDeps(),
	})
	a.srv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.Web.ReadHeaderTimeout,
		ReadTimeout:       cfg.Web.ReadTimeout,
		WriteTimeout:      cfg.Web.WriteTimeout,
		IdleTimeout:       cfg.Web.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	if cfg.Web.ConfigFile != "" {
		if err := web.Validate(cfg.Web.ConfigFile); err != nil {
			a.abort()
			return nil, fmt.Errorf("web.config_file: %w", err)
		}
	}
	a.ln, err = net.Listen("tcp", cfg.Web.ListenAddress)
	if err != nil {
		a.abort()
		return nil, fmt.Errorf("web.listen_address: %w", err)
	}
	return a, nil
}

// abort undoes New when a later step fails: nothing is delivered, and
// what the durable queue holds stays there.
func (a *App) abort() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a.manager.Close(ctx, true)
	if a.store != nil {
		_ = a.store.Close()
	}
}

// LoadMapping compiles the mapping file at path, or the built-in mapping
// when path is empty.
func LoadMapping(path string) (*mapping.Mapping, error) {
	if path == "" {
		return mapping.Default()
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mapping.file: %w", err)
	}
	return mapping.Parse(path, data)
}

func (a *App) loadToken() error {
	token := ""
	if f := a.cfg.Web.BearerTokenFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("web.bearer_token_file: %w", err)
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			return fmt.Errorf("web.bearer_token_file: %s is empty", f)
		}
	}
	a.token.Store(&token)
	return nil
}

func sources(ts []config.Target) []alertmanager.Source {
	out := make([]alertmanager.Source, 0, len(ts))
	for _, t := range ts {
		kind := alertmanager.SourceStatic
		switch t.Discovery {
		case config.DNSA:
			kind = alertmanager.SourceDNSA
		case config.DNSSRV:
			kind = alertmanager.SourceDNSSRV
		}
		out = append(out, alertmanager.Source{Kind: kind, URL: t.URL})
	}
	return out
}

// openStorage opens the durable queue and queues what a previous run left.
func (a *App) openStorage() error {
	store, replayed, err := storage.Open(a.cfg.Storage.Path, storage.Options{FsyncInterval: a.cfg.Storage.FsyncInterval}, a.logger, a.registry)
	if err != nil {
		return err
	}
	for _, r := range replayed {
		if _, err := a.manager.Send(r.Alert, r.Ack); err != nil {
			store.Close()
			return err
		}
	}
	store.ReplayDone()
	if len(replayed) > 0 {
		a.logger.Info("durable queue: alerts of a previous run queued again", "alerts", len(replayed), "path", a.cfg.Storage.Path)
	}
	a.store = store
	return nil
}

func userAgent() string { return "falco-am-bridge/" + version.Version }

// Addr returns the address the bridge listens on.
func (a *App) Addr() string { return a.ln.Addr().String() }

// Registry returns the bridge's metrics registry.
func (a *App) Registry() *prometheus.Registry { return a.registry }

// Run serves until ctx ends, reloading on every receive from reload. Then
// it stops taking events, delivers what is queued within the drain
// timeout, and returns.
func (a *App) Run(ctx context.Context, reload <-chan struct{}) error {
	a.logger.Info("starting falco-am-bridge", "version", version.Info(), "listen", a.Addr(),
		"alertmanagers", strings.Join(a.cfg.Alertmanager.URLs, ","), "mapping", a.mapping.Load().Name())
	if a.discover.Dynamic() {
		dctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go a.discover.Run(dctx, a.cfg.Alertmanager.RefreshInterval)
	}
	serveErr := make(chan error, 1)
	go func() {
		flags := &web.FlagConfig{WebConfigFile: &a.cfg.Web.ConfigFile, WebListenAddresses: &[]string{a.Addr()}, WebSystemdSocket: new(bool)}
		serveErr <- web.Serve(a.ln, a.srv, flags, a.logger)
	}()

	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-reload:
			if rerr := a.Reload(); rerr != nil {
				a.logger.Error("reload failed; keeping the running configuration", "err", rerr)
			}
		case err = <-serveErr:
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			break loop
		}
	}
	a.shutdown()
	return err
}

func (a *App) shutdown() {
	a.logger.Info("shutting down: no new events; delivering queued alerts", "timeout", a.cfg.Alertmanager.DrainTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := a.srv.Shutdown(ctx); err != nil {
		a.logger.Warn("closing HTTP connections", "err", err)
	}
	cancel()
	ctx, cancel = context.WithTimeout(context.Background(), a.cfg.Alertmanager.DrainTimeout)
	defer cancel()
	durable := a.store != nil
	left := a.manager.Close(ctx, durable)
	switch {
	case left == 0:
		a.logger.Info("all queued alerts delivered")
	case durable:
		a.logger.Warn("alerts left undelivered at shutdown are kept in the durable queue for the next start", "alerts", left)
	default:
		a.logger.Warn("alerts left undelivered at shutdown are dropped (no --storage.path)", "alerts", left)
	}
	if durable {
		if err := a.store.Close(); err != nil {
			a.logger.Error("closing the durable queue", "err", err)
		}
	}
}

// Reload compiles the mapping file and the bearer token again and swaps
// them in; on any error the running ones stay.
func (a *App) Reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	m, err := LoadMapping(a.cfg.Mapping.File)
	if err == nil {
		prev := *a.token.Load()
		err = a.loadToken()
		if err != nil {
			a.token.Store(&prev)
		}
	}
	a.noteReload(err)
	if err != nil {
		a.metrics.reloadOK.Set(0)
		return err
	}
	a.mapping.Store(m)
	a.metrics.reloadOK.Set(1)
	a.metrics.reloadTime.SetToCurrentTime()
	a.logger.Info("configuration reloaded", "mapping", m.Name())
	return nil
}

func (a *App) ready() error { return a.manager.Ready() }

// Accept maps events to alerts and queues them; it implements
// server.Pipeline. In durable mode the alerts are written to disk first.
func (a *App) Accept(events []falco.Event, received time.Time) (server.Accepted, error) {
	m := a.mapping.Load()
	acc := server.Accepted{Events: len(events)}
	alerts := make([]*alertmanager.Alert, 0, len(events))
	for i := range events {
		res := m.Map(&events[i], received)
		a.ui.recent.Mapped(&events[i], received, res)
		if len(res.Errors) > 0 {
			acc.Errors += len(res.Errors)
			a.metrics.mappingErrors.Add(float64(len(res.Errors)))
			if ok, n := a.metrics.mappingErrLog.Allow(received); ok {
				a.logger.Warn("mapping template failed; the alert is sent without that value", "rule", events[i].Rule, "err", res.Errors[0], "suppressed_since_last", n)
			}
		}
		if res.Alert == nil {
			acc.Dropped++
			a.metrics.dropped.WithLabelValues(res.Dropped).Inc()
			a.logger.Debug("event dropped by the mapping", "rule", events[i].Rule, "priority", events[i].Priority, "reason", res.Dropped)
			continue
		}
		alerts = append(alerts, res.Alert)
	}
	a.metrics.accepted.Add(float64(acc.Events))
	if len(alerts) == 0 {
		return acc, nil
	}

	var ack alertmanager.Ack
	if a.store != nil {
		seg, err := a.store.Append(alerts)
		if err != nil {
			// Still deliver from memory: Falco does not retry, so
			// refusing would lose the alerts for sure.
			a.metrics.storageFallback.Add(float64(len(alerts)))
			a.logger.Error("durable queue write failed; these alerts are queued in memory only", "alerts", len(alerts), "err", err)
		} else {
			ack = seg
			defer seg.Done()
		}
	}
	n, err := a.manager.SendAll(alerts, ack)
	if err != nil {
		return acc, err
	}
	if n == 0 {
		if ok, sup := a.metrics.noTargetLog.Allow(received); ok {
			a.logger.Warn("no Alertmanager known yet; alerts are held until one is", "alerts", len(alerts), "suppressed_since_last", sup)
		}
	}
	acc.Queues = n
	acc.Alerts = len(alerts)
	return acc, nil
}
