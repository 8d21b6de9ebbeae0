package main

import "syscall"

// childProcAttr makes the kernel kill a child process if the test binary
// dies first (a panic, or go test's timeout), so no Prometheus outlives it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
