// Command capture stands in for Slack and PagerDuty on loopback and records
// what Alertmanager sends them; see package capture for the endpoints.
//
// The address it listens on is the first line on stdout, so a script can
// start it on port 0 and read where it went:
//
//	go run ./hack/capture --out captures.jsonl > capture.addr &
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/falco-am-bridge/falco-am-bridge/hack/capture/capture"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "capture:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("capture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen-address", "127.0.0.1:0", "address to listen on; port 0 picks a free port")
	outPath := fs.String("out", "", "also append every record to this file as a JSON line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	var out io.Writer
	if *outPath != "" {
		f, err := os.OpenFile(*outPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		defer f.Close()
		out = f
	}

	srv := capture.New(out)
	if err := srv.Start(*listen); err != nil {
		return err
	}
	fmt.Fprintln(stdout, srv.Addr())
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	logger.Info("capturing", "slack", srv.URL()+"/slack/", "pagerduty", srv.URL()+"/pagerduty/v2/enqueue", "captures", srv.URL()+"/captures")

	<-ctx.Done()
	return srv.Close()
}
