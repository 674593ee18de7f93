package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
)

// TestFullDisk: the durable queue on a 2 MiB tmpfs, Alertmanager down,
// events sent until the disk is full. Every event answered 202 is on disk
// (none is held in memory only); past the full disk the answer is 503 with
// Retry-After and /-/ready fails; the error is logged a few times, not
// once per request; a failed write starts no new segment. Then the bridge
// is killed, Alertmanager started and the bridge restarted on the same
// disk: every event answered 202 reaches Alertmanager.
//
// It needs root to mount the tmpfs, as make test runs in CI.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("E2E_REQUIRED") != "" {
			t.Fatal("mounting a tmpfs needs root (E2E_REQUIRED=1)")
		}
		t.Skip("mounting a tmpfs needs root")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	amBin := harness.Binary(t, "ALERTMANAGER_BIN")
	bin := harness.BridgeBinary(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk")
	if err := os.Mkdir(disk, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := osexec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", disk).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = osexec.Command("umount", "-l", disk).Run() })

	amAddr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	storage := filepath.Join(disk, "queue")
	opts := harness.BridgeOptions{
		Bin: bin, Alertmanagers: []string{"http://" + amAddr},
		// The spool may take far more than the disk has: the disk fills first.
		Args: []string{"--storage.path=" + storage, "--storage.max-bytes=1GiB", "--alertmanager.max-backoff=1s"},
	}
	bridge := harness.StartBridge(ctx, t, opts)

	var accepted, refused int
	var retryAfter string
	for i := 0; refused < 200; i++ {
		if i > 100000 {
			t.Fatalf("the 2 MiB disk took %d events", i)
		}
		resp, err := falcoClient.Post(bridge.URL+"/", "application/json", bytes.NewReader(distinctEvent(i)))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusAccepted:
			if refused > 0 {
				// Room again? Nothing delivers or deletes here.
				t.Fatalf("event %d accepted after %d refused", i, refused)
			}
			accepted++
		case http.StatusServiceUnavailable:
			refused++
			retryAfter = resp.Header.Get("Retry-After")
		default:
			t.Fatalf("event %d: answer %d", i, resp.StatusCode)
		}
	}
	written := metric(ctx, t, bridge, "falco_am_bridge_storage_records_written_total")
	refusedMetric := metric(ctx, t, bridge, "falco_am_bridge_events_refused_total", "reason=storage_error")
	segments := metric(ctx, t, bridge, "falco_am_bridge_storage_segments")
	resp, err := http.Get(bridge.URL + "/-/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	errorLines := strings.Count(bridge.Output(), "level=ERROR")
	t.Logf("2 MiB disk: %d accepted (%v records written), then %d refused with 503 (Retry-After %q); %v segments; %d ERROR lines; /-/ready %d",
		accepted, written, refused, retryAfter, segments, errorLines, resp.StatusCode)
	if int(written) != accepted {
		t.Errorf("%d events answered 202 but %v records written: some are held in memory only", accepted, written)
	}
	if int(refusedMetric) != refused || retryAfter == "" {
		t.Errorf("events_refused_total{reason=storage_error} = %v, Retry-After %q; want %d and a delay", refusedMetric, retryAfter, refused)
	}
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/-/ready answered %d with the disk full, want 503", resp.StatusCode)
	}
	// A segment is 4 MiB at most and the disk 2: a failed write that
	// started a new segment would make one per refused event.
	if segments > 2 {
		t.Errorf("%v segments after %d failed writes", segments, refused)
	}
	if errorLines > 10 {
		t.Errorf("%d ERROR lines for %d failed writes: the log is not rate-limited", errorLines, refused)
	}

	bridge.Kill()
	cfg := amConfig(t, dir)
	am := harness.StartT(t, exec(amBin, "--config.file="+cfg, "--web.listen-address="+amAddr,
		"--cluster.listen-address=", "--storage.path="+filepath.Join(dir, "am")))
	if err := am.WaitReady(ctx, "http://"+amAddr+"/-/ready"); err != nil {
		t.Fatal(err)
	}
	harness.StartBridge(ctx, t, opts)
	waitUntil(ctx, t, fmt.Sprintf("the %d accepted alerts in Alertmanager", accepted), func() bool {
		return alertCount(ctx, t, "http://"+amAddr) == accepted
	})
}
