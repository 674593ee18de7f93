// Command bench loads a real falco-am-bridge binary with real Falco events
// and prints one table: how fast it accepts and delivers them, end-to-end
// latency, CPU per event and peak memory.
//
// Every scenario runs twice on the same prepared requests: first against a
// ceiling (this program started as a server that only decodes the events
// with encoding/json and answers 202), then against a fresh bridge process
// that delivers to a fake Alertmanager inside this program. The fake
// Alertmanager finds each event by the sequence number its output starts
// with (the description annotation of the shipped mapping) and measures the
// time from sending to arrival. CPU (utime+stime) and peak RSS (VmHWM) of
// both servers come from /proc.
//
// Then, unless -real=false, the same bridge goes in front of the real
// Alertmanager binary (-alertmanager). First this program posts batches of
// distinct alerts, encoded as the bridge encodes them, straight to a fresh
// Alertmanager for several batch sizes and connections: the best is the
// ceiling. The scenarios after it (a burst in memory and durable, an
// Alertmanager that starts late, a bridge killed mid-burst, events too big
// for the memory queue) count what arrived from Alertmanager's own
// alertmanager_alerts gauge, so every event is a distinct alert, and print
// a second table. `make bench` builds both binaries and runs it.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if addr := os.Getenv(ceilingEnv); addr != "" {
		if err := serveCeiling(addr); err != nil {
			fmt.Fprintln(os.Stderr, "ceiling:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		bridge     = fs.String("bridge", os.Getenv("BRIDGE_BIN"), "falco-am-bridge binary (default $BRIDGE_BIN, else bin/falco-am-bridge of this repository)")
		amBin      = fs.String("alertmanager", os.Getenv("ALERTMANAGER_BIN"), "Alertmanager binary of the real-Alertmanager scenarios (default $ALERTMANAGER_BIN, else bin/tools/alertmanager of this repository, which make tools installs)")
		bridgeArgs stringList
		names      = fs.String("scenarios", "", "comma-separated standard scenarios to run, fake- or real-Alertmanager (default all; see -list)")
		withFake   = fs.Bool("fake", true, "run the fake-Alertmanager scenarios (unless -scenarios or -scenario say which to run)")
		withReal   = fs.Bool("real", true, "run the real-Alertmanager scenarios and Alertmanager alone (unless -scenarios or -scenario say which to run)")
		custom     stringList
		scale      = fs.Float64("scale", 1, "multiply every scenario's event count by this")
		quick      = fs.Bool("quick", false, "a smoke test: -scale 0.02")
		events     = fs.String("events", "", "Falco events, JSON lines or a glob of JSON files (default ../shared/falco-events/real-events.jsonl, else pkg/mapping/testdata/events/*.json)")
		repeat     = fs.Int("runs", 1, "run each fake-Alertmanager scenario this many times and report the run of median ratio to the ceiling (the machine may be shared)")
		wait       = fs.Duration("wait", time.Minute, "how long delivery may go on after the last request")
		amWait     = fs.Duration("am-wait", 3*time.Minute, "the same, in the real-Alertmanager scenarios (from Alertmanager's start when it starts late)")
		amPasses   = fs.Int("am-passes", 2, "measure Alertmanager alone this many times over every batch size and connections, keeping the best of each")
		list       = fs.Bool("list", false, "print the standard scenarios and exit")
	)
	fs.Var(&bridgeArgs, "bridge.flag", "a flag for the bridge, e.g. -bridge.flag=--storage.path=/tmp/q (repeatable)")
	fs.Var(&custom, "scenario", "run this scenario (repeatable; after the -scenarios ones, which then run only when named): name[:events=N,batch=N,conns=N,rate=EVENTS_PER_S,am-delay=DURATION,gzip,storm] (a standard name starts from that scenario)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *list {
		for _, s := range scenarios {
			fmt.Fprintf(stdout, "%-12s fake Alertmanager: %s\n", s.Name, s.describe())
		}
		for _, s := range realScenarios {
			fmt.Fprintf(stdout, "%-12s real Alertmanager: %s\n", s.Name, s.describe())
		}
		return nil
	}
	if *quick {
		*scale = 0.02
	}
	if *repeat < 1 {
		return fmt.Errorf("-runs %d: must be 1 or more", *repeat)
	}
	if *amPasses < 1 {
		return fmt.Errorf("-am-passes %d: must be 1 or more", *amPasses)
	}
	if *scale <= 0 {
		return fmt.Errorf("-scale %g: must be more than 0", *scale)
	}

	var picked []scenario
	var pickedReal []realScenario
	switch {
	case *names != "":
		for n := range strings.SplitSeq(*names, ",") {
			if i := indexScenario(n); i >= 0 {
				picked = append(picked, scenarios[i])
			} else if i := indexRealScenario(n); i >= 0 {
				pickedReal = append(pickedReal, realScenarios[i])
			} else {
				return fmt.Errorf("-scenarios: no scenario %q (see -list)", n)
			}
		}
	case len(custom) == 0:
		if *withFake {
			picked = scenarios
		}
		if *withReal {
			pickedReal = realScenarios
		}
	}
	for _, spec := range custom {
		sc, err := parseScenario(spec)
		if err != nil {
			return err
		}
		picked = append(picked, sc)
	}

	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	if *bridge == "" {
		root, err := repoRoot(wd)
		if err != nil {
			return err
		}
		*bridge = filepath.Join(root, "bin", "falco-am-bridge")
	}
	if _, err := os.Stat(*bridge); err != nil {
		return fmt.Errorf("bridge binary: %w (run `make build`, or pass -bridge)", err)
	}
	if len(pickedReal) > 0 {
		if *amBin == "" {
			root, err := repoRoot(wd)
			if err != nil {
				return err
			}
			*amBin = filepath.Join(root, "bin", "tools", "alertmanager")
		}
		if _, err := os.Stat(*amBin); err != nil {
			return fmt.Errorf("alertmanager binary: %w (run `make tools`, pass -alertmanager, or leave the real-Alertmanager scenarios out with -real=false)", err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ts, from, err := loadTemplates(*events, wd)
	if err != nil {
		return err
	}
	rn := &runner{
		bridge: *bridge, bridgeArgs: bridgeArgs, self: self, templates: ts, amBin: *amBin,
		wait: *wait, amWait: *amWait, amPasses: *amPasses, settle: time.Second, verifyEvery: 32, progress: stderr,
	}

	if root, err := repoRoot(wd); err == nil {
		if rel, err := filepath.Rel(root, from); err == nil {
			from = rel
		}
	}
	fmt.Fprintf(stdout, "%s\n\n", machine(ctx, *bridge, from, len(ts)))
	var results []result
	var failed []error
	for _, sc := range picked {
		var runs []result
		for range *repeat {
			r, err := rn.run(ctx, sc.scaled(*scale))
			if err != nil {
				failed = append(failed, fmt.Errorf("%s: %w", sc.Name, err))
				break
			}
			runs = append(runs, r)
		}
		if ctx.Err() != nil {
			break
		}
		if len(runs) == *repeat {
			results = append(results, median(runs))
		}
	}
	if len(picked) > 0 {
		if len(pickedReal) > 0 {
			fmt.Fprint(stdout, "fake Alertmanager (inside this program)\n\n")
		}
		writeTable(stdout, results)
	}
	if len(pickedReal) > 0 && ctx.Err() == nil {
		if len(picked) > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "real Alertmanager (%s)\n\n", amVersion(*amBin))
		c, realResults, err := rn.runRealAll(ctx, pickedReal, *scale)
		failed = append(failed, err)
		writeRealTable(stdout, c, realResults)
	}
	return errors.Join(failed...)
}

// runRealAll measures Alertmanager alone, then runs the real-Alertmanager
// scenarios; a scenario that fails leaves a row out, not the others.
func (rn *runner) runRealAll(ctx context.Context, picked []realScenario, scale float64) (amCeiling, []realResult, error) {
	var c amCeiling
	if slices.ContainsFunc(picked, func(sc realScenario) bool { return sc.AM != amNever }) {
		var err error
		if c, err = rn.runAMCeiling(ctx, max(1, int(math.Round(amCeilingAlerts*scale)))); err != nil {
			return c, nil, fmt.Errorf("measuring Alertmanager alone: %w", err)
		}
	}
	var results []realResult
	var failed []error
	for _, sc := range picked {
		r, err := rn.runReal(ctx, sc.scaled(scale))
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			failed = append(failed, fmt.Errorf("%s: %w", sc.Name, err))
			continue
		}
		results = append(results, r)
	}
	return c, results, errors.Join(failed...)
}

// median is the run whose ratio to the ceiling is the median, with the
// ratios of all runs.
func median(runs []result) result {
	slices.SortFunc(runs, func(a, b result) int { return cmp.Compare(a.ratio(), b.ratio()) })
	m := runs[len(runs)/2]
	if len(runs) > 1 {
		for _, r := range runs {
			m.Ratios = append(m.Ratios, r.ratio())
		}
	}
	return m
}

func indexScenario(name string) int {
	for i, s := range scenarios {
		if s.Name == name {
			return i
		}
	}
	return -1
}

// machine says what was measured where.
func machine(ctx context.Context, bridge, events string, n int) string {
	version := "unknown version"
	if out, err := exec.CommandContext(ctx, bridge, "version").Output(); err == nil {
		version, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	}
	model := runtime.GOARCH
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%s\n%d CPUs (%s), %s/%s, %s; %d events from %s; %s",
		version, runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH, runtime.Version(), n, events,
		time.Now().UTC().Format("2006-01-02 15:04 UTC"))
}
