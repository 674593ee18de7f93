package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long Stop waits after SIGTERM before it kills.
const stopGrace = 5 * time.Second

// maxOutput bounds the output kept per process; older output is dropped.
const maxOutput = 1 << 20

// Process is a started program whose stdout and stderr are kept in memory.
type Process struct {
	cmd    *exec.Cmd
	out    *tailBuffer
	exited chan struct{}
	err    error // from cmd.Wait, set before exited is closed

	stopOnce sync.Once
	stopErr  error
}

// Start starts cmd with its stdout and stderr captured (see Output). On
// Linux the process is killed if the calling process dies first, so a
// crashed or timed-out test leaves nothing running.
func Start(cmd *exec.Cmd) (*Process, error) {
	if cmd.Stdout != nil || cmd.Stderr != nil {
		return nil, errors.New("harness.Start captures the output itself: leave cmd.Stdout and cmd.Stderr nil")
	}
	p := &Process{cmd: cmd, out: &tailBuffer{}, exited: make(chan struct{})}
	cmd.Stdout = p.out
	cmd.Stderr = p.out
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// StartT is Start for a test: it fails the test when the process cannot
// start, stops the process when the test ends, and then logs its output if
// the test failed.
func StartT(t TB, cmd *exec.Cmd) *Process {
	t.Helper()
	p, err := Start(cmd)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		err := p.Stop()
		if t.Failed() || err != nil {
			t.Logf("%s (stop: %v) output:\n%s", cmd.Path, err, p.Output())
		}
	})
	return p
}

// Output returns what the process wrote to stdout and stderr so far (the
// last MiB of it).
func (p *Process) Output() string {
	return p.out.String()
}

// Pid is the process id, for reading the process's figures in /proc.
func (p *Process) Pid() int {
	return p.cmd.Process.Pid
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} {
	return p.exited
}

// WaitReady is WaitReady that gives up as soon as the process exits.
func (p *Process) WaitReady(ctx context.Context, url string) error {
	err := waitReady(ctx, url, p.exited)
	if err != nil {
		select {
		case <-p.exited:
			return fmt.Errorf("%w: %w", err, p.err)
		default:
		}
	}
	return err
}

// Stop sends SIGTERM, kills the process if it has not exited 5 s later, and
// waits for it. It returns an error only if the process had already exited
// with one before Stop was called. Calling Stop again returns the same result.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() {
		select {
		case <-p.exited:
			if p.err != nil {
				p.stopErr = fmt.Errorf("%s exited before it was stopped: %w", p.cmd.Path, p.err)
			}
			return
		default:
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			_ = p.cmd.Process.Kill()
		}
		select {
		case <-p.exited:
		case <-time.After(stopGrace):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p.stopErr
}

// Signal sends sig to the process, as SIGHUP for a reload.
func (p *Process) Signal(sig os.Signal) error {
	return p.cmd.Process.Signal(sig)
}

// Kill sends SIGKILL, as a crash or the OOM killer would, and waits for the
// process to exit.
func (p *Process) Kill() {
	p.stopOnce.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
}

// tailBuffer is a goroutine-safe writer that keeps the last maxOutput bytes.
type tailBuffer struct {
	mu      sync.Mutex
	buf     []byte
	dropped bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > maxOutput {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-maxOutput/2:]...)
		b.dropped = true
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped {
		return "[earlier output dropped]\n" + string(b.buf)
	}
	return string(b.buf)
}
