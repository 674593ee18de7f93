package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/version"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/server"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/status"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/translate"
)

// uiState is what the status page knows beyond the metrics: the last
// events (nil with --web.ui=false) and the last reload.
type uiState struct {
	recent  *status.Recent
	started time.Time
	exe     string // this binary, for translate --api
	// memoryLimitFrom: where the Go memory limit comes from.
	memoryLimitFrom string

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
		// The playground's translations run in a child of this
		// binary (translate --api); in-process if it cannot be found.
		if exe, err := os.Executable(); err == nil {
			a.ui.exe = exe
		}
	}
}

// uiDeps returns what the server needs to serve the UI, or nil when it is
// off.
func (a *App) uiDeps() *server.UI {
	if !a.cfg.Web.UI {
		return nil
	}
	ui := &server.UI{
		Recent:  a.ui.recent,
		Status:  a.status,
		Mapping: func() *mapping.Mapping { return a.state.Load().mapping },
	}
	if a.ui.exe != "" {
		ui.Translate = a.translate
	}
	return ui
}

// translate runs a playground translation in a child process
// (falco-am-bridge translate --api), which the request's deadline kills:
// a mapping's template can loop without end, and a goroutine cannot be
// stopped.
func (a *App) translate(ctx context.Context, req translate.Request) (translate.Answer, error) {
	var ans translate.Answer
	body, err := json.Marshal(req)
	if err != nil {
		return ans, err
	}
	cmd := exec.CommandContext(ctx, a.ui.exe, "translate", "--api")
	cmd.Stdin = bytes.NewReader(body)
	cmd.Env = []string{}
	stdout := &cappedBuffer{max: server.TranslateMaxAnswer}
	stderr := &cappedBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	switch {
	case ctx.Err() != nil:
		return ans, ctx.Err()
	case stdout.over:
		return ans, server.ErrTranslateTooLarge
	case err != nil:
		a.logger.Debug("playground translation failed", "err", err, "stderr", stderr.String())
		return ans, translateFailure(err, stderr.Bytes())
	}
	if err := json.Unmarshal(stdout.Bytes(), &ans); err != nil {
		return ans, fmt.Errorf("translate --api answered no JSON: %w", err)
	}
	return ans, nil
}

// maxTranslateError bounds the error of the child shown in the playground.
const maxTranslateError = 1 << 10

// translateFailure says in a line why translate --api failed: the error it
// reported (its one line on standard error, exit status 1), or what
// stopped it. A Go runtime failure (out of memory, a panic) writes a
// goroutine dump, which is for the debug log, not for the playground.
func translateFailure(err error, stderr []byte) error {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("the translation could not be run: %w", err)
	}
	if ee.ExitCode() == 1 {
		line, _, _ := bytes.Cut(stderr, []byte("\n"))
		if msg, ok := bytes.CutPrefix(line, []byte("falco-am-bridge: ")); ok && len(bytes.TrimSpace(msg)) > 0 {
			text := strings.ToValidUTF8(string(bytes.TrimSpace(msg)), "\uFFFD")
			return errors.New(mapping.Truncate(text, maxTranslateError))
		}
	}
	switch {
	case bytes.Contains(stderr, []byte("out of memory")):
		return errors.New("the mapping ran out of memory on this event")
	case ee.ExitCode() == -1:
		// Killed: by the CPU time limit, or from outside.
		return errors.New("the mapping was stopped on this event: it used more CPU time than the playground allows")
	default:
		return fmt.Errorf("the translation failed (exit status %d); the bridge's debug log has the details", ee.ExitCode())
	}
}

// cappedBuffer keeps the first max bytes written and notes the rest.
type cappedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.over = true
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
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
		Runtime: status.Runtime{
			GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0),
			MemoryLimitFrom: a.ui.memoryLimitFrom,
		},
	}
	// SetMemoryLimit with a negative value only reads the limit.
	if limit := debug.SetMemoryLimit(-1); limit != math.MaxInt64 {
		s.Runtime.MemoryLimitBytes = limit
	}
	name := a.state.Load().mapping.Name()
	if a.state.Load().cfg.Mapping.File == "" {
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
