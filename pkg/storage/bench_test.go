package storage

import (
	"testing"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
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
			s, err := Open(b.TempDir(), Options{FsyncInterval: bc.interval, MaxBytes: 1 << 40}, logger(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			batch := []*alert.Wire{wire(1)}
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Append(batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRead measures reading a record back, as a sender fills its
// window: no decoding, a copy of the bytes and a check of the layout.
func BenchmarkRead(b *testing.B) {
	s, err := Open(b.TempDir(), Options{FsyncInterval: time.Hour, MaxBytes: 1 << 40}, logger(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	from := s.Tail()
	c, _ := s.Cursor("am", &from)
	batch := []*alert.Wire{wire(1)}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if err := s.Append(batch); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if n := c.Fill(func() bool { return true }, func(Record) {}); n != 1 {
			b.Fatalf("read %d", n)
		}
	}
}
