package cli

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/bytedance/gopkg/util/gctuner"
)

// TestTuneGC: with a small live heap, a collection raises GOGC towards the
// minimum heap goal; GOGC from the environment turns the tuning off.
func TestTuneGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() {
		gctuner.Tuning(0)
		debug.SetGCPercent(before)
	})

	t.Setenv("GOGC", "100")
	if gogc, tuned := tuneGC(); tuned || gogc != "100" {
		t.Fatalf("with GOGC=100: tuneGC() = %q, %v; want 100, false", gogc, tuned)
	}
	runtime.GC()
	time.Sleep(50 * time.Millisecond) // finalizers run after the collection
	if got := debug.SetGCPercent(-1); got != 100 {
		t.Fatalf("with GOGC set, GOGC is %d, want 100 as it was", got)
	}

	os.Unsetenv("GOGC")
	if _, tuned := tuneGC(); !tuned {
		t.Fatal("without GOGC, tuneGC() did not tune")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		if got := debug.SetGCPercent(-1); got > gcMinPercent {
			if got > gcMaxPercent {
				t.Fatalf("GOGC %d, past the bound %d", got, gcMaxPercent)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GOGC still %d after collections with a small heap", debug.SetGCPercent(-1))
		}
	}
}
