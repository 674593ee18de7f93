package falco

import (
	"os"
	"testing"
)

// BenchmarkDecode decodes one typical Falco 0.41+ syscall alert (2 KB, 25
// output fields), what every http_output POST carries.
func BenchmarkDecode(b *testing.B) {
	body, err := os.ReadFile("../mapping/testdata/events/syscall_k8s_critical.json")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		evs, errs := Decode(body)
		if len(evs) != 1 || len(errs) != 0 {
			b.Fatal(errs)
		}
	}
}
