package app

import (
	"os/exec"
	"strings"
	"testing"
)

// TestTranslateFailureIsShort: what the playground shows of a failed
// translate --api is the error it reported, or one line saying what
// stopped it, never a Go stack dump.
func TestTranslateFailureIsShort(t *testing.T) {
	const dump = `goroutine 1 gp=0xc000002380 m=0 mp=0x1 [running]:\nruntime.throw({0xe15210?, 0x4e21?})\n\truntime/panic.go:1229 +0x48\n`
	for _, tc := range []struct {
		name, script, want string
	}{
		{"reported error", `echo "falco-am-bridge: event: missing: expected a Falco event as JSON" >&2; exit 1`,
			"event: missing: expected a Falco event as JSON"},
		{"out of memory", `printf 'runtime: out of memory: cannot allocate 167772160-byte block\nfatal error: out of memory\n\n` + dump + `' >&2; exit 2`,
			"the mapping ran out of memory on this event"},
		{"panic", `printf 'panic: boom\n\n` + dump + `' >&2; exit 2`,
			"the translation failed (exit status 2); the bridge's debug log has the details"},
		{"a dump with exit status 1", `printf '` + dump + `' >&2; exit 1`,
			"the translation failed (exit status 1); the bridge's debug log has the details"},
		{"killed", `kill -KILL $$`,
			"the mapping was stopped on this event: it used more CPU time than the playground allows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr strings.Builder
			cmd := exec.Command("/bin/sh", "-c", tc.script)
			cmd.Stderr = &stderr
			err := cmd.Run()
			if err == nil {
				t.Fatal("the script succeeded")
			}
			got := translateFailure(err, []byte(stderr.String())).Error()
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	long := strings.Repeat("x", 5000)
	err := exec.Command("/bin/sh", "-c", "exit 1").Run()
	if got := translateFailure(err, []byte("falco-am-bridge: "+long+"\n")).Error(); len(got) > maxTranslateError+len("…") {
		t.Errorf("a long error is shown whole: %d bytes", len(got))
	}
}
