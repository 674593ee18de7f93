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
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/alertmanager"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/config"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/metric"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/pipeline"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/sensors"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/server"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/source/jetstream"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/storage"
)

// App is a running bridge.
type App struct {
	// cfg is the configuration at start: what a reload cannot change
	// (listen address, storage, log, server limits) is read from it.
	cfg      *config.Config
	logger   *slog.Logger
	registry *prometheus.Registry
	// state is what a reload replaces, whole.
	state    atomic.Pointer[state]
	manager  *alertmanager.Manager
	discover *alertmanager.Discovery
	store    *storage.Store // nil without --storage.path
	sensors  *sensors.Tracker
	pipeline *pipeline.Pipeline
	source   *jetstream.Source // nil without --source.nats.url
	metrics  *metrics
	ln       net.Listener
	srv      *http.Server

	loadConfig func() (*config.Config, error)
	reloads    chan chan error // to the one goroutine that reloads (Run)
	stopping   chan struct{}   // closed when Run stops taking reloads
	ui         *uiState        // status page: recent events, last reload
}

// state is the part of the bridge a reload rebuilds: built first, from
// everything that can fail, then published with one atomic store.
type state struct {
	cfg     *config.Config
	mapping *mapping.Mapping
	token   string // "" when no bearer token is required
	// am are the delivery options, which the Manager reads from here;
	// sources the Alertmanagers as configured, for discovery.
	am      *alertmanager.Options
	sources []alertmanager.Source
}

// Options are what NewWithOptions takes besides the configuration: serve
// sets LoadConfig and MemoryLimitFrom, tests also Resolver. The zero value
// (New) runs the configuration given and reloads only the files it names.
type Options struct {
	// Resolver resolves dns+ and dnssrv+ Alertmanager names; nil means
	// the system's.
	Resolver alertmanager.Resolver
	// LoadConfig reads the configuration again (flags, environment and
	// --config.file, as at start) on every reload. Nil keeps the
	// configuration given to New and reloads only the files it names.
	LoadConfig func() (*config.Config, error)
	// MemoryLimitFrom says where the Go memory limit in effect comes from
	// (the command line sets it), for the status page.
	MemoryLimitFrom string
}

// New builds everything that can fail and starts listening, so that Addr
// is known; Run serves.
func New(cfg *config.Config, logger *slog.Logger) (*App, error) {
	return NewWithOptions(cfg, logger, Options{})
}

// NewWithOptions is New with opts.
func NewWithOptions(cfg *config.Config, logger *slog.Logger, opts Options) (*App, error) {
	a := &App{
		cfg: cfg, logger: logger, registry: prometheus.NewRegistry(), loadConfig: opts.LoadConfig,
		reloads: make(chan chan error), stopping: make(chan struct{}),
	}
	a.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector(metric.Namespace),
	)
	a.metrics = newMetrics(a.registry)
	a.initUI()
	a.ui.memoryLimitFrom = opts.MemoryLimitFrom

	st, err := build(cfg)
	if err != nil {
		return nil, err
	}
	a.state.Store(st)
	if cfg.Storage.Path != "" {
		a.store, err = storage.Open(cfg.Storage.Path, storage.Options{
			FsyncInterval: time.Duration(cfg.Storage.FsyncInterval), MaxBytes: int64(cfg.Storage.MaxBytes), WhenFull: storage.WhenFull(cfg.Storage.WhenFull),
		}, logger, a.registry)
		if err != nil {
			return nil, err
		}
	}
	a.manager, err = alertmanager.NewManager(*st.am, a.store, logger, a.registry)
	if err != nil {
		a.abort()
		return nil, err
	}
	a.manager.Follow(func() *alertmanager.Options { return a.state.Load().am })
	a.sensors = sensors.New(sensors.Options{
		MaxTracked:   cfg.Sensors.MaxTracked,
		SilentAfter:  time.Duration(cfg.Sensors.SilentAfter),
		StaticLabels: func() model.LabelSet { return a.state.Load().mapping.StaticLabels() },
	}, a.manager, logger, a.registry)
	a.discover = alertmanager.NewDiscovery(st.sources, opts.Resolver, a.manager, logger, a.registry)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err = a.discover.Refresh(ctx)
	cancel()
	if err != nil {
		// Not fatal: the names are resolved again every refresh interval.
		logger.Error("resolving Alertmanagers failed", "err", err)
	}

	a.pipeline = pipeline.New(pipeline.Options{
		Mapping:  func() *mapping.Mapping { return a.state.Load().mapping },
		Sink:     sink{a.manager},
		Seen:     a.sensors.Seen,
		Recorder: a.ui.recent,
		Logger:   logger,
		Registry: a.registry,
	})
	if n := cfg.Source.NATS; n.Enabled() {
		a.source, err = jetstream.New(jetstream.Options{
			URLs: n.URLs, Stream: n.Stream, Subject: n.Subject, Consumer: n.Consumer,
			CredentialsFile: n.CredentialsFile, NKeySeedFile: n.NKeySeedFile,
			TLSCAFile: n.TLS.CAFile, TLSCertFile: n.TLS.CertFile, TLSKeyFile: n.TLS.KeyFile,
			MaxAckPending: n.MaxAckPending, AckWait: time.Duration(n.AckWait),
			Limits: falco.Limits{MaxEvents: cfg.Web.MaxEventsPerRequest},
			Name:   userAgent(),
		}, a.pipeline, logger, a.registry)
		if err != nil {
			a.abort()
			return nil, err
		}
	}
	handler := server.New(server.Options{
		MaxRequestBytes:      int64(cfg.Web.MaxRequestBytes),
		MaxBodyBytesInFlight: int64(cfg.Web.MaxRequestBytesInFlight),
		MaxEventsPerRequest:  cfg.Web.MaxEventsPerRequest,
		BearerToken:          func() string { return a.state.Load().token },
	}, server.Deps{
		Logger:   logger,
		Pipeline: a.pipeline,
		Ready:    a.ready,
		Reload:   a.Reload,
		Gatherer: a.registry,
		Registry: a.registry,
		UI:       a.uiDeps(),
	})
	a.srv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: time.Duration(cfg.Web.ReadHeaderTimeout),
		ReadTimeout:       time.Duration(cfg.Web.ReadTimeout),
		WriteTimeout:      time.Duration(cfg.Web.WriteTimeout),
		IdleTimeout:       time.Duration(cfg.Web.IdleTimeout),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	a.ln, err = net.Listen("tcp", cfg.Web.ListenAddress)
	if err != nil {
		a.abort()
		return nil, fmt.Errorf("web.listen_address: %w", err)
	}
	return a, nil
}

// build makes, from cfg, everything a reload replaces, the delivery
// options and the Alertmanager sources included; it fails on any bad
// file, reporting every problem.
func build(cfg *config.Config) (*state, error) {
	var errs []error
	st := &state{cfg: cfg}
	m, err := LoadMapping(cfg.Mapping.File)
	if err != nil {
		errs = append(errs, err)
	}
	st.mapping = m
	if st.token, err = readToken(cfg.Web.BearerTokenFile); err != nil {
		errs = append(errs, err)
	}
	if cfg.Web.ConfigFile != "" {
		// web.Validate reads the file without a bound: check its size first.
		if _, err := config.ReadFile("web.config_file", cfg.Web.ConfigFile, config.MaxWebConfigFileBytes); err != nil {
			errs = append(errs, err)
		} else if err := web.Validate(cfg.Web.ConfigFile); err != nil {
			errs = append(errs, fmt.Errorf("web.config_file: %w", err))
		}
	}
	httpClient, err := commoncfg.NewClientFromConfig(cfg.Alertmanager.HTTPConfig, "alertmanager",
		commoncfg.WithUserAgent(userAgent()))
	if err != nil {
		errs = append(errs, fmt.Errorf("alertmanager.http_config: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	st.sources = sources(cfg.Alertmanager.Targets)
	st.am = alertmanager.Options{
		QueueCapacity:       cfg.Alertmanager.QueueCapacity,
		QueueMaxBytes:       int64(cfg.Alertmanager.QueueMaxBytes),
		BatchSize:           cfg.Alertmanager.BatchSize,
		MaxRequestsInFlight: cfg.Alertmanager.MaxRequestsInFlight,
		BatchWait:           time.Duration(cfg.Alertmanager.BatchWait),
		Timeout:             time.Duration(cfg.Alertmanager.Timeout),
		MinBackoff:          time.Duration(cfg.Alertmanager.MinBackoff),
		MaxBackoff:          time.Duration(cfg.Alertmanager.MaxBackoff),
		HTTPClient:          httpClient,
		UserAgent:           userAgent(),
	}.Complete()
	return st, nil
}

// abort undoes New when a later step fails: nothing is delivered, and
// what the durable queue holds stays there.
func (a *App) abort() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if a.manager != nil {
		a.manager.Close(ctx, true)
	}
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
	data, err := config.ReadFile("mapping.file", path, config.MaxMappingFileBytes)
	if err != nil {
		return nil, err
	}
	return mapping.Parse(path, data)
}

func readToken(file string) (string, error) {
	if file == "" {
		return "", nil
	}
	b, err := config.ReadFile("web.bearer_token_file", file, config.MaxTokenFileBytes)
	if err != nil {
		return "", err
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("web.bearer_token_file: %s is empty", file)
	}
	return token, nil
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

func userAgent() string { return "falco-am-bridge/" + version.Version }

// Addr returns the address the bridge listens on.
func (a *App) Addr() string { return a.ln.Addr().String() }

// Registry returns the bridge's metrics registry.
func (a *App) Registry() *prometheus.Registry { return a.registry }

// Run serves until ctx ends, reloading on every receive from reload. Then
// it stops taking events, delivers what is queued within the drain
// timeout, and returns. Every reload, from reload or from Reload
// (POST /-/reload), is done here, one at a time.
func (a *App) Run(ctx context.Context, reload <-chan struct{}) error {
	st := a.state.Load()
	a.logger.Info("starting falco-am-bridge", "version", version.Info(), "listen", a.Addr(),
		"alertmanagers", strings.Join(st.cfg.Alertmanager.URLs, ","), "mapping", st.mapping.Name())
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go a.discover.Run(dctx, func() time.Duration { return time.Duration(a.state.Load().cfg.Alertmanager.RefreshInterval) })
	sctx, stopSensors := context.WithCancel(ctx)
	sensorsDone := make(chan struct{})
	go func() { a.sensors.Run(sctx); close(sensorsDone) }()
	srcCtx, stopSource := context.WithCancel(ctx)
	sourceDone := make(chan struct{})
	go func() {
		if a.source != nil {
			a.source.Run(srcCtx)
		}
		close(sourceDone)
	}()
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
			_ = a.reload()
		case reply := <-a.reloads:
			reply <- a.reload()
		case err = <-serveErr:
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			break loop
		}
	}
	// Before shutdown, which waits for handlers: a POST /-/reload now
	// gets an answer instead of waiting for a loop that is gone.
	close(a.stopping)
	stopSensors()
	<-sensorsDone
	// No new events from the stream; those taken are delivered (and
	// acknowledged) or given back in shutdown.
	stopSource()
	<-sourceDone
	a.shutdown()
	return err
}

func (a *App) shutdown() {
	drain := time.Duration(a.state.Load().cfg.Alertmanager.DrainTimeout)
	a.logger.Info("shutting down: no new events; delivering queued alerts", "timeout", drain)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := a.srv.Shutdown(ctx); err != nil {
		a.logger.Warn("closing HTTP connections", "err", err)
	}
	cancel()
	ctx, cancel = context.WithTimeout(context.Background(), drain)
	defer cancel()
	durable := a.store != nil
	// With a JetStream source the queues keep their leftovers instead of
	// dropping them: a dropped alert would acknowledge its event, which
	// is given back to the stream below instead.
	left := a.manager.Close(ctx, durable || a.source != nil)
	switch {
	case left == 0:
		a.logger.Info("all queued alerts delivered")
	case durable:
		a.logger.Warn("alerts left undelivered at shutdown are kept in the durable queue for the next start", "alerts", left)
	case a.source != nil:
		a.logger.Warn("alerts left undelivered at shutdown: the JetStream events among them are given back to the stream, those from HTTP are dropped (no --storage.path)", "alerts", left)
	default:
		a.logger.Warn("alerts left undelivered at shutdown are dropped (no --storage.path)", "alerts", left)
	}
	if a.source != nil {
		a.source.Close()
	}
	if durable {
		if err := a.store.Close(); err != nil {
			a.logger.Error("closing the durable queue", "err", err)
		}
	}
}

// Reload asks Run's goroutine to reload and waits for the result.
func (a *App) Reload() error {
	reply := make(chan error, 1)
	select {
	case a.reloads <- reply:
	case <-a.stopping:
		return errors.New("shutting down")
	}
	return <-reply
}

// reload reads the configuration again, with the mapping, bearer token,
// web configuration and HTTP client configuration files it names, builds
// everything that can fail, and only then swaps the new state in. On any
// error the running state stays.
func (a *App) reload() error {
	cfg := a.state.Load().cfg
	var err error
	if a.loadConfig != nil {
		cfg, err = a.loadConfig()
	}
	var st *state
	if err == nil {
		st, err = build(cfg)
	}
	a.noteReload(err)
	if err != nil {
		a.metrics.reloadOK.Set(0)
		a.logger.Error("reload failed; keeping the running configuration", "err", err)
		return err
	}
	// Against the configuration at start, which these still come from.
	for _, key := range config.RestartOnly(a.cfg, cfg) {
		a.logger.Warn("configuration change needs a restart", "key", key)
	}
	// One swap publishes the whole new state: the mapping and token the
	// handlers use, the options the senders read. Then the queues take the
	// new bounds, and the discovery loop resolves any DNS names, after
	// this returns.
	a.state.Store(st)
	a.manager.Apply()
	a.discover.SetSources(st.sources)
	a.metrics.reloadOK.Set(1)
	a.metrics.reloadTime.SetToCurrentTime()
	a.logger.Info("configuration reloaded", "mapping", st.mapping.Name(), "alertmanagers", strings.Join(cfg.Alertmanager.URLs, ","))
	return nil
}

func (a *App) ready() error { return a.manager.Ready() }

// sink gives the pipeline's alerts to every Alertmanager's queue.
type sink struct{ m *alertmanager.Manager }

func (s sink) SendAll(wires []*alert.Wire, ack pipeline.Ack) (int, error) {
	return s.m.SendAll(wires, ack)
}
