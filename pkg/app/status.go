package app

import (
	"sync"
	"time"

	"github.com/prometheus/common/version"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/server"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/status"
)

// uiState is what the status page knows beyond the metrics: the last
// events (nil with --web.ui=false) and the last reload.
type uiState struct {
	recent  *status.Recent
	started time.Time

	mu         sync.Mutex
	loaded     time.Time // of the running mapping
	reloadErr  string
	reloadedAt time.Time
}

func (a *App) initUI() {
	now := time.Now()
	a.ui = &uiState{started: now, loaded: now}
	if a.cfg.Web.UI {
		a.ui.recent = status.NewRecent(status.DefaultRecentEvents, status.DefaultRecentBytes)
	}
}

// uiDeps returns what the server needs to serve the UI, or nil when it is
// off.
func (a *App) uiDeps() *server.UI {
	if !a.cfg.Web.UI {
		return nil
	}
	return &server.UI{
		Recent:  a.ui.recent,
		Status:  a.status,
		Mapping: func() *mapping.Mapping { return a.mapping.Load() },
	}
}

// noteReload records the outcome of a reload for the status page.
func (a *App) noteReload(err error) {
	a.ui.mu.Lock()
	defer a.ui.mu.Unlock()
	a.ui.reloadedAt = time.Now()
	if err != nil {
		a.ui.reloadErr = err.Error()
		return
	}
	a.ui.reloadErr = ""
	a.ui.loaded = a.ui.reloadedAt
}

func (a *App) status() (status.Status, error) {
	now := time.Now()
	s := status.Status{
		Version: version.Version, Revision: version.GetRevision(),
		Started: a.ui.started, UptimeSeconds: now.Sub(a.ui.started).Round(time.Second).Seconds(),
	}
	name := a.mapping.Load().Name()
	if a.cfg.Mapping.File == "" {
		name = "built-in (" + name + ")"
	}
	a.ui.mu.Lock()
	s.Mapping = status.Mapping{
		File: name, Loaded: a.ui.loaded, ReloadOK: a.ui.reloadErr == "",
		ReloadErr: a.ui.reloadErr, ReloadedAt: a.ui.reloadedAt,
	}
	a.ui.mu.Unlock()
	if err := s.FromMetrics(a.registry, a.manager.TargetResults()); err != nil {
		return s, err
	}
	s.Recent.MaxEvents, s.Recent.MaxBytes = a.ui.recent.Limits()
	s.Recent.Bytes = a.ui.recent.Bytes()
	s.Recent.Events = a.ui.recent.List()
	if s.Recent.Events == nil {
		s.Recent.Events = []status.Entry{}
	}
	return s, nil
}
