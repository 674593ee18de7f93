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
	// memoryLimitFromQueues: none of the above, so the limit is what the
	// queue bounds need (see queueMemory).
	memoryLimitFromQueues = "alertmanager.queue_max_bytes"
	memoryLimitNone       = "none"
)

// queueMemory is the Go memory limit for queues of maxBytes, so that the
// bridge's RSS stays within twice the queues (what the garbage collector
// lets grow before it collects, at a GOGC of 100, which tuneGC keeps once
// the live heap is past half of gcMinHeapGoal) and 64 MiB for the
// rest (request bodies being decoded, the runtime, the status page). Of
// those 64 MiB, 32 are left out of the limit for what the Go runtime does
// not count, the binary's own pages first: with 60 KB alerts filling
// 32 MiB queues (hack/bench, real-big), a limit of 2 × 32 + 64 MiB let RSS
// reach 145 MiB, one of 2 × 32 + 48 MiB 128 to 130 MiB, at the bound, and
// one of 2 × 32 + 32 MiB 112 to 113 MiB.
func queueMemory(maxBytes int64) int64 { return 2*maxBytes + 32<<20 }

// setMemoryLimit sets the Go soft memory limit once, at start: to
// runtime.memory_limit when it is set; else it keeps GOMEMLIMIT, which the
// Go runtime has read; else it takes 90% of the limit that cgroup reports,
// the rest being room for what the Go runtime does not count (stacks being
// freed, the binary's own pages); else, with no limit anywhere, it takes
// queueMemory(queueMaxBytes), so that a burst or large alerts make the
// garbage collector work harder instead of growing the heap to twice what
// is live. It returns where the limit comes from.
func setMemoryLimit(c config.Runtime, queueMaxBytes int64, cgroup memlimit.Provider, logger *slog.Logger) string {
	if c.MemoryLimit > 0 {
		debug.SetMemoryLimit(int64(c.MemoryLimit))
		return memoryLimitFromFlag
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return memoryLimitFromEnv
	}
	limit, err := memlimit.Set(memlimit.WithProvider(cgroup), memlimit.WithRatio(0.9))
	switch {
	case errors.Is(err, memlimit.ErrCgroupsNotSupported), errors.Is(err, memlimit.ErrNoLimit), err == nil && limit == math.MaxInt64:
	case err != nil:
		logger.Warn("reading the cgroup memory limit failed; the Go memory limit follows the queue bounds (set --runtime.memory-limit)", "err", err)
	default:
		return memoryLimitFromCgroup
	}
	if queueMaxBytes <= 0 {
		return memoryLimitNone
	}
	debug.SetMemoryLimit(queueMemory(queueMaxBytes))
	return memoryLimitFromQueues
}
