//go:build unix

package server

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user and system) the process has used, for
// benchmarks that report CPU per unit of work: on a machine shared with
// other jobs it moves far less than elapsed time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
