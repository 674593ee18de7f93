package cli

import (
	"errors"
	"log/slog"
	"math"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/config"
)

// Where the Go memory limit comes from, as the status page says.
const (
	memoryLimitFromFlag   = "runtime.memory_limit"
	memoryLimitFromEnv    = "GOMEMLIMIT"
	memoryLimitFromCgroup = "cgroup"
	memoryLimitNone       = "none"
)

// setMemoryLimit sets the Go soft memory limit once, at start: to
// runtime.memory_limit when it is set; else it keeps GOMEMLIMIT, which the
// Go runtime has read; else it takes 90% of the limit that cgroup reports,
// the rest being room for what the Go runtime does not count (stacks being
// freed, the binary's own pages). It returns where the limit comes from.
func setMemoryLimit(c config.Runtime, cgroup memlimit.Provider, logger *slog.Logger) string {
	if c.MemoryLimit > 0 {
		debug.SetMemoryLimit(c.MemoryLimit)
		return memoryLimitFromFlag
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return memoryLimitFromEnv
	}
	limit, err := memlimit.Set(memlimit.WithProvider(cgroup), memlimit.WithRatio(0.9))
	switch {
	case errors.Is(err, memlimit.ErrCgroupsNotSupported):
		return memoryLimitNone
	case err != nil:
		logger.Warn("reading the cgroup memory limit failed; no Go memory limit (set --runtime.memory-limit)", "err", err)
		return memoryLimitNone
	case limit == math.MaxInt64:
		return memoryLimitNone
	}
	return memoryLimitFromCgroup
}
