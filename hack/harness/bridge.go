package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// Bridge is a falco-am-bridge process started by StartBridge.
type Bridge struct {
	*Process
	URL string // http://127.0.0.1:port, where Falco posts
}

// BridgeOptions say how to start falco-am-bridge.
type BridgeOptions struct {
	Bin           string
	Alertmanagers []string // --alertmanager.url, in order
	MappingFile   string   // "" for the built-in mapping
	Args          []string // more flags
	Addr          string   // host:port to listen on; "" for a free loopback port
}

// StartBridge starts falco-am-bridge on a free loopback port and waits until
// it is ready. It is stopped (SIGTERM) when the test ends.
func StartBridge(ctx context.Context, t TB, o BridgeOptions) *Bridge {
	t.Helper()
	addr := o.Addr
	if addr == "" {
		var err error
		if addr, err = FreeAddr(); err != nil {
			t.Fatalf("%v", err)
		}
	}
	args := []string{"serve", "--web.listen-address=" + addr, "--log.level=debug"}
	for _, u := range o.Alertmanagers {
		args = append(args, "--alertmanager.url="+u)
	}
	if o.MappingFile != "" {
		args = append(args, "--mapping.file="+o.MappingFile)
	}
	args = append(args, o.Args...)
	p := StartT(t, exec.Command(o.Bin, args...))
	b := &Bridge{Process: p, URL: "http://" + addr}
	if err := p.WaitReady(ctx, b.URL+"/-/ready"); err != nil {
		t.Fatalf("falco-am-bridge on %s: %v", addr, err)
	}
	return b
}

var (
	buildOnce sync.Once
	built     string
	buildErr  error
)

// BridgeBinary returns the falco-am-bridge binary named by BRIDGE_BIN (make
// sets it), or builds one from this checkout, once per test process, into
// bin/e2e (ignored by git, removed by make clean).
func BridgeBinary(t TB) string {
	t.Helper()
	if p := os.Getenv("BRIDGE_BIN"); p != "" {
		return Binary(t, "BRIDGE_BIN")
	}
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		built = filepath.Join(root, "bin", "e2e", "falco-am-bridge")
		cmd := exec.Command("go", "build", "-o", built, "./cmd/falco-am-bridge")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building falco-am-bridge: %v", buildErr)
	}
	return built
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found")
		}
		dir = parent
	}
}
