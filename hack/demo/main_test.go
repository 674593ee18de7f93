package main

import (
	"os"
	"testing"
	"time"
)

// TestHold: the demo stops by itself unless a person watches it, so that
// `make demo </dev/null` and CI end; DEMO_HOLD decides when set.
func TestHold(t *testing.T) {
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	file, err := os.Open("main.go")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()

	tests := []struct {
		name  string
		stdin *os.File
		env   string
		want  bool
	}{
		{"dev null", devNull, "", false},
		{"pipe", r, "", false},
		{"file", file, "", false},
		{"DEMO_HOLD=1", devNull, "1", true},
		{"DEMO_HOLD=true", r, "true", true},
		{"DEMO_HOLD=0", r, "0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DEMO_HOLD", tt.env)
			if tt.env == "" {
				os.Unsetenv("DEMO_HOLD")
			}
			done := make(chan bool, 1)
			go func() { done <- hold(tt.stdin) }()
			select {
			case got := <-done:
				if got != tt.want {
					t.Errorf("hold = %v, want %v", got, tt.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("hold did not return at once")
			}
		})
	}
}
