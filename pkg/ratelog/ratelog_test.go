package ratelog

import (
	"testing"
	"time"
)

func TestSampler(t *testing.T) {
	s := New(10 * time.Second)
	t0 := time.Unix(1000, 0)
	for i, tc := range []struct {
		at         time.Duration
		ok         bool
		suppressed int
	}{
		{0, true, 0},
		{time.Second, false, 0},
		{2 * time.Second, false, 0},
		{10 * time.Second, true, 2},
		{11 * time.Second, false, 0},
		{30 * time.Second, true, 1},
	} {
		ok, n := s.Allow(t0.Add(tc.at))
		if ok != tc.ok || n != tc.suppressed {
			t.Errorf("call %d at +%v: Allow = %v, %d; want %v, %d", i, tc.at, ok, n, tc.ok, tc.suppressed)
		}
	}
}

func TestKeyed(t *testing.T) {
	k := NewKeyed(10 * time.Second)
	t0 := time.Unix(1000, 0)
	for i, tc := range []struct {
		key          string
		at           time.Duration
		n            int
		ok           bool
		lines, items int
	}{
		{"400", 0, 5, true, 0, 0},
		{"400", time.Second, 3, false, 0, 0},
		{"413", time.Second, 1, true, 0, 0},
		{"400", 2 * time.Second, 4, false, 0, 0},
		{"400", 10 * time.Second, 1, true, 2, 7},
		{"413", 12 * time.Second, 1, true, 0, 0},
	} {
		ok, lines, items := k.Allow(tc.key, t0.Add(tc.at), tc.n)
		if ok != tc.ok || lines != tc.lines || items != tc.items {
			t.Errorf("call %d (%s at +%v): Allow = %v, %d, %d; want %v, %d, %d", i, tc.key, tc.at, ok, lines, items, tc.ok, tc.lines, tc.items)
		}
	}
}
