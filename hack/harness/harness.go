// Package harness runs real programs for end-to-end tests and demos: it finds
// their binaries, picks free loopback ports, starts processes with their output
// kept for the failure report, waits until they are ready and writes test
// variants of the shipped Alertmanager configuration.
//
// It does not import testing; the functions taking a TB work with *testing.T.
package harness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"time"
)

// TB is the part of testing.TB this package uses.
type TB interface {
	Helper()
	Cleanup(func())
	Failed() bool
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// E2ERequiredEnv names the environment variable that, set to 1, turns a
// missing binary from a skipped test into a failed one (CI sets it).
const E2ERequiredEnv = "E2E_REQUIRED"

// Binary returns the executable named by the environment variable env, such
// as ALERTMANAGER_BIN. When the variable is unset or names no executable file
// the test is skipped, or fails when E2E_REQUIRED=1.
func Binary(t TB, env string) string {
	t.Helper()
	path := os.Getenv(env)
	var problem string
	if path == "" {
		problem = fmt.Sprintf("%s is not set; run `make test`, which installs the binary and sets it", env)
	} else if fi, err := os.Stat(path); err != nil {
		problem = fmt.Sprintf("%s=%s: %v; %s", env, path, err, installHint(env))
	} else if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		problem = fmt.Sprintf("%s=%s is not an executable file", env, path)
	}
	if problem == "" {
		return path
	}
	if os.Getenv(E2ERequiredEnv) == "1" {
		t.Fatalf("%s (%s=1)", problem, E2ERequiredEnv)
		return ""
	}
	t.Skipf("%s", problem)
	return ""
}

// installHint says which make target installs the binary that env names;
// `make test` runs each of them first.
func installHint(env string) string {
	target := map[string]string{
		"ALERTMANAGER_BIN": "`make tools`",
		"AMTOOL_BIN":       "`make tools`",
		"BRIDGE_BIN":       "`make build`",
		"CHROMIUM_BIN":     "`make deb-tools` (apt-get install chromium)",
		"PROMTOOL_BIN":     "`make deb-tools` (apt-get install prometheus)",
		"PYTHON_BIN":       "`make deb-tools` (apt-get install python3-yaml)",
		"HELM_BIN":         "`make deploy-tools`",
		"KUSTOMIZE_BIN":    "`make deploy-tools`",
	}[env]
	if target == "" {
		return "run `make test`, which installs the binary"
	}
	return "run " + target + ", or `make test`, which runs it"
}

// FreeAddr returns a loopback address ("127.0.0.1:port") whose port was free
// a moment ago. Another process can take it before it is used; prefer
// listening on port 0 where the program can report its address.
//
// The port is picked at random below the kernel's ephemeral range, which
// port 0 listeners (every httptest server of the tests running beside)
// and outgoing connections take theirs from: an Alertmanager started late
// on an address picked early then rarely finds it taken, or, worse, finds
// another test's server there answering the bridge in its place.
func FreeAddr() (string, error) {
	low := ephemeralLow()
	for range 100 {
		if low <= freePortsFrom {
			break
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", freePortsFrom+rand.IntN(low-freePortsFrom)))
		if err != nil {
			continue // taken
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil {
			return "", fmt.Errorf("finding a free port: %w", err)
		}
		return addr, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	return addr, nil
}

// freePortsFrom is the lowest port FreeAddr picks.
const freePortsFrom = 10000

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	var low, high int
	if _, err := fmt.Sscan(string(b), &low, &high); err != nil {
		return 32768
	}
	return low
}

// WaitReady polls url every 50 ms until it answers 200 or ctx ends.
func WaitReady(ctx context.Context, url string) error {
	return waitReady(ctx, url, nil)
}

func waitReady(ctx context.Context, url string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if ctx.Err() == nil || last == nil {
			last = err // else keep the reason from before ctx ended
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last: %w)", url, context.Cause(ctx), last)
		case <-exited:
			return errors.New("process exited before " + url + " was ready")
		case <-tick.C:
		}
	}
}
