package harness

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
)

// Alertmanager is a real Alertmanager started by StartAlertmanager.
type Alertmanager struct {
	*Process
	URL         string // http://127.0.0.1:port
	ClusterAddr string // gossip address, "" when not clustered
}

// AlertmanagerOptions say how to start an Alertmanager.
type AlertmanagerOptions struct {
	Bin        string // the alertmanager binary
	ConfigFile string
	DataDir    string // --storage.path
	// ClusterAddr, when set, enables clustering on it; Peers are the other
	// members' addresses. Without it clustering is off.
	ClusterAddr string
	Peers       []string
	LogLevel    string // default info
}

// StartAlertmanager starts an Alertmanager on a free loopback port and
// waits until it is ready. It is stopped when the test ends.
func StartAlertmanager(ctx context.Context, t TB, o AlertmanagerOptions) *Alertmanager {
	t.Helper()
	addr, err := FreeAddr()
	if err != nil {
		t.Fatalf("%v", err)
	}
	level := o.LogLevel
	if level == "" {
		level = "info"
	}
	args := []string{
		"--config.file=" + o.ConfigFile,
		"--web.listen-address=" + addr,
		"--web.external-url=http://" + addr,
		"--storage.path=" + filepath.Join(o.DataDir, strings.ReplaceAll(addr, ":", "_")),
		"--log.level=" + level,
		"--cluster.listen-address=" + o.ClusterAddr,
	}
	if o.ClusterAddr != "" {
		// Short gossip timings so a pair settles and dedups within a test.
		args = append(args,
			"--cluster.advertise-address="+o.ClusterAddr,
			"--cluster.gossip-interval=100ms",
			"--cluster.pushpull-interval=1s",
			"--cluster.peer-timeout=3s",
			"--cluster.settle-timeout=2s",
		)
		for _, p := range o.Peers {
			args = append(args, "--cluster.peer="+p)
		}
	}
	p := StartT(t, exec.Command(o.Bin, args...))
	am := &Alertmanager{Process: p, URL: "http://" + addr, ClusterAddr: o.ClusterAddr}
	if err := p.WaitReady(ctx, am.URL+"/-/ready"); err != nil {
		t.Fatalf("alertmanager on %s: %v", addr, err)
	}
	return am
}
