package cli

import "syscall"

// limitResources caps this process's CPU time and memory, for translate
// --api: a mapping template can loop or grow without end, and the
// server's timeout only kills what it can see.
func limitResources() {
	_ = syscall.Setrlimit(syscall.RLIMIT_CPU, &syscall.Rlimit{Cur: 5, Max: 5})
	_ = syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: 2 << 30, Max: 2 << 30})
}
