//go:build unix

package remotewrite

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) of the whole process so far:
// on a shared machine wall-clock ns/op overstates the work, CPU time
// does not (GC and other goroutines of the process included).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
