package storage

import (
	"testing"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alertmanager"
)

// BenchmarkAppend measures one request's worth of alerts (one alert, as
// Falco sends them) written to the durable queue, with the sync policies.
func BenchmarkAppend(b *testing.B) {
	for _, bc := range []struct {
		name     string
		interval time.Duration
	}{
		{"fsync=1s", time.Second},
		{"fsync=every-append", 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{FsyncInterval: bc.interval}, logger(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			batch := []*alertmanager.Alert{testAlert(1)}
			b.ReportAllocs()
			for b.Loop() {
				seg, _, err := s.Append(batch)
				if err != nil {
					b.Fatal(err)
				}
				seg.Done()
			}
		})
	}
}
