package cli

import (
	"os"

	"github.com/bytedance/gopkg/util/gctuner"
)

// gcMinHeapGoal is the heap the garbage collector lets grow before it
// collects, at the least, while the live heap is small: a few MiB when
// Falco posts one event per request. At the default GOGC of 100 the
// runtime collects every 4 MiB allocated then, some fifty times a second
// under a flat-out load of single events (hack/bench, single), and the
// marking took about an eighth of the bridge's CPU. 64 MiB is half of what
// the bridge may take at the default queue bound (see queueMemory); in
// hack/bench, runs alternated with a goal of 32 MiB (and a GOGC of 500 at
// most) took 7% less CPU per single event and 9% less per event in arrays,
// for an RSS of 60 MiB instead of 41 under that load.
const gcMinHeapGoal = 64 << 20

// GOGC bounds while tuned: never below the runtime's default, so a large
// live heap (a burst, large alerts) is collected as it was, and never past
// eleven times the live heap. The memory limit (setMemoryLimit) still
// makes the collector work harder as the process nears it.
const (
	gcMinPercent = 100
	gcMaxPercent = 1000
)

// tuneGC raises GOGC, after every collection, so that the next one comes
// when the heap reaches gcMinHeapGoal, within [gcMinPercent, gcMaxPercent]
// (bytedance's gctuner). A GOGC set in the environment is left alone:
// then it returns it, and false.
func tuneGC() (gogc string, tuned bool) {
	if gogc := os.Getenv("GOGC"); gogc != "" {
		return gogc, false
	}
	gctuner.SetMinGCPercent(gcMinPercent)
	gctuner.SetMaxGCPercent(gcMaxPercent)
	gctuner.Tuning(gcMinHeapGoal)
	return "", true
}
