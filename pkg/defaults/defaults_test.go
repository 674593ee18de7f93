package defaults

import (
	"testing"
	"time"
)

func TestSet(t *testing.T) {
	n, neg, kept := 0, -3, 7
	Set(&n, 5)
	Set(&neg, 5)
	Set(&kept, 5)
	if n != 5 || neg != 5 || kept != 7 {
		t.Errorf("ints: got %d, %d, %d, want 5, 5, 7", n, neg, kept)
	}
	var d time.Duration
	Set(&d, time.Second)
	s, t2 := "", "set"
	Set(&s, "default")
	Set(&t2, "default")
	if d != time.Second || s != "default" || t2 != "set" {
		t.Errorf("got %v, %q, %q, want 1s, default, set", d, s, t2)
	}
}
