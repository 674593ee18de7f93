package mapping

import (
	"os"
	"testing"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
)

// BenchmarkMap maps one typical syscall alert with the shipped mapping:
// 9 labels and 13 annotations rendered, cleaned and capped.
func BenchmarkMap(b *testing.B) {
	body, err := os.ReadFile("testdata/events/syscall_k8s_critical.json")
	if err != nil {
		b.Fatal(err)
	}
	evs, errs := falco.Decode(body)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	m := mustDefault(b)
	b.ReportAllocs()
	for b.Loop() {
		if res := m.Map(&evs[0], goldenReceived); res.Alert == nil {
			b.Fatal(res)
		}
	}
}
