// Package cli is falco-am-bridge's command line: serve (the default),
// translate, check and version. It turns arguments into calls to the other
// packages and exit codes; main only adds signals.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/app"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/config"
)

// IO is where a command reads and writes.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// exitError carries an exit status without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// Run runs the command line args and returns the exit status. ctx ends
// serving; every receive from reload reloads the configuration.
func Run(ctx context.Context, args []string, stdio IO, reload <-chan struct{}) int {
	root := newRoot(ctx, stdio, reload)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintln(stdio.Stderr, "falco-am-bridge:", err)
	return 1
}

func newRoot(ctx context.Context, stdio IO, reload <-chan struct{}) *cobra.Command {
	serve := func(cmd *cobra.Command, _ []string) error { return runServe(ctx, cmd.Flags(), stdio, reload) }
	root := &cobra.Command{
		Use:   "falco-am-bridge",
		Short: "Turn Falco alerts into Prometheus Alertmanager alerts",
		Long: `falco-am-bridge receives Falco alerts (Falco's http_output or falcosidekick's
webhook output), maps them to Alertmanager alerts with a label-mapping file,
and delivers them to every Alertmanager of a cluster: batched, retried,
never making Falco wait.

Run without a command, it serves (same as "falco-am-bridge serve").`,
		Args:          cobra.NoArgs,
		RunE:          serve,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdio.Stdin)
	root.SetOut(stdio.Stdout)
	root.SetErr(stdio.Stderr)
	config.RegisterFlags(root.Flags())
	root.Flags().SortFlags = false

	serveCmd := &cobra.Command{
		Use:   "serve",
		Short: "Receive Falco events over HTTP and deliver them to Alertmanager (the default)",
		Long: `Receive Falco events over HTTP and deliver them to Alertmanager.

Endpoints: POST / (Falco JSON: one object, an array, or newline-delimited;
gzip accepted), GET /-/healthy, GET /-/ready, GET /metrics, POST /-/reload,
and, unless --web.ui=false, the status page GET /, the mapping playground
GET /playground, GET /api/v1/status and POST /api/v1/translate.
SIGHUP or POST /-/reload reads the configuration again (flags still win over
the file) with the mapping, bearer token, web and HTTP client files; a bad
file keeps the running configuration.

Every flag can also be set in the --config.file YAML (key in brackets in the
README) and as a FALCO_AM_BRIDGE_* environment variable (shown with each flag).`,
		Args: cobra.NoArgs,
		RunE: serve,
	}
	config.RegisterFlags(serveCmd.Flags())
	serveCmd.Flags().SortFlags = false

	root.AddCommand(serveCmd, newTranslate(stdio), newCheck(stdio), &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(stdio.Stdout, version.Print("falco-am-bridge"))
		},
	})
	return root
}

// NewLogger returns the logger the configuration asks for.
func NewLogger(c config.Log, w io.Writer) (*slog.Logger, error) {
	lvl := promslog.NewLevel()
	if err := lvl.Set(c.Level); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	f := promslog.NewFormat()
	if err := f.Set(c.Format); err != nil {
		return nil, fmt.Errorf("log.format: %w", err)
	}
	return promslog.New(&promslog.Config{Level: lvl, Format: f, Writer: w}), nil
}

func runServe(ctx context.Context, fs *pflag.FlagSet, stdio IO, reload <-chan struct{}) error {
	cfg, err := config.Load(fs)
	if err != nil {
		return err
	}
	logger, err := NewLogger(cfg.Log, stdio.Stderr)
	if err != nil {
		return err
	}
	from := setMemoryLimit(cfg.Runtime, int64(cfg.Alertmanager.QueueMaxBytes), memlimit.FromCgroup, logger)
	if from != memoryLimitNone {
		logger.Info("Go memory limit set", "bytes", debug.SetMemoryLimit(-1), "from", from)
	}
	if gogc, tuned := tuneGC(); !tuned {
		logger.Info("GOGC set in the environment: the garbage collector is not tuned", "GOGC", gogc)
	}
	a, err := app.NewWithOptions(cfg, logger, app.Options{
		LoadConfig:      func() (*config.Config, error) { return config.Load(fs) },
		MemoryLimitFrom: from,
	})
	if err != nil {
		return err
	}
	return a.Run(ctx, reload)
}
