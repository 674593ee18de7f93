package cli

import (
	"errors"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/config"
)

// TestSetMemoryLimit: runtime.memory_limit wins, then GOMEMLIMIT, then 90%
// of the cgroup's limit; without any, what the queue bounds need.
func TestSetMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	noLimit := func() (uint64, error) { return 0, memlimit.ErrNoLimit }
	broken := func() (uint64, error) { return 0, errors.New("no memory.max") }
	for _, tc := range []struct {
		name       string
		configured int64
		env        string
		cgroup     memlimit.Provider
		wantFrom   string
		wantLimit  int64
	}{
		{"flag", 200 << 20, "", memlimit.Limit(1 << 30), "runtime.memory_limit", 200 << 20},
		{"flag over GOMEMLIMIT", 300 << 20, "100MiB", memlimit.Limit(1 << 30), "runtime.memory_limit", 300 << 20},
		{"GOMEMLIMIT", 0, "100MiB", memlimit.Limit(1 << 30), "GOMEMLIMIT", math.MaxInt64},
		{"cgroup", 0, "", memlimit.Limit(1000 << 20), "cgroup", 900 << 20},
		{"no cgroup limit", 0, "", noLimit, "alertmanager.queue_max_bytes", 96 << 20},
		{"cgroup unreadable", 0, "", broken, "alertmanager.queue_max_bytes", 96 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(math.MaxInt64)
			t.Setenv("GOMEMLIMIT", tc.env)
			t.Setenv("AUTOMEMLIMIT", "")
			os.Unsetenv("AUTOMEMLIMIT")
			if tc.env == "" {
				os.Unsetenv("GOMEMLIMIT")
			}
			from := setMemoryLimit(config.Runtime{MemoryLimit: config.Size(tc.configured)}, 32<<20, tc.cgroup, slog.New(slog.DiscardHandler))
			if from != tc.wantFrom {
				t.Errorf("from = %q, want %q", from, tc.wantFrom)
			}
			// GOMEMLIMIT is the Go runtime's to read, at start: this
			// process started without it.
			if got := debug.SetMemoryLimit(-1); got != tc.wantLimit {
				t.Errorf("limit = %d, want %d", got, tc.wantLimit)
			}
		})
	}
}
