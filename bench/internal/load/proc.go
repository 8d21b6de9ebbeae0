package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a process's CPU time and memory at one moment.
type Proc struct {
	CPUSeconds float64 // user + system
	RSS        int64   // VmRSS, bytes
	HWM        int64   // VmHWM: peak RSS, bytes
}

// ReadProc reads process pid's CPU time from /proc/PID/stat and its memory
// from /proc/PID/status.
func ReadProc(pid int) (Proc, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Proc{}, err
	}
	return parseProc(b, mustRead(fmt.Sprintf("/proc/%d/status", pid)))
}

func mustRead(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// userHz is the unit of the CPU times in /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture Go supports).
const userHz = 100

func parseProc(stat, status []byte) (Proc, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 > len(stat) {
		return Proc{}, fmt.Errorf("parse /proc stat %q: no command name", stat)
	}
	// Fields after the command name, which is in parentheses: state is
	// field 0 here, utime 11 and stime 12.
	f := strings.Fields(string(stat[i+2:]))
	if len(f) < 13 {
		return Proc{}, fmt.Errorf("parse /proc stat: %d fields", len(f))
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return Proc{}, fmt.Errorf("parse /proc stat: utime %q stime %q", f[11], f[12])
	}
	p := Proc{CPUSeconds: (utime + stime) / userHz}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			p.RSS = kb << 10
		case "VmHWM":
			p.HWM = kb << 10
		}
	}
	return p, nil
}

// ReadProcs returns the sum over processes pids of their CPU time, RSS
// and peak RSS (a cluster's nodes on one machine).
func ReadProcs(pids []int) (Proc, error) {
	var sum Proc
	for _, pid := range pids {
		p, err := ReadProc(pid)
		if err != nil {
			return sum, fmt.Errorf("read process %d: %w", pid, err)
		}
		sum.CPUSeconds += p.CPUSeconds
		sum.RSS += p.RSS
		sum.HWM += p.HWM
	}
	return sum, nil
}

// SelfCPU returns this process's user + system CPU seconds.
func SelfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// DirBytes returns the bytes of the regular files under dir, skipping the
// subdirectories named in skip (relative to dir).
func DirBytes(dir string, skip ...string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // removed while we walk: compaction, log truncation
			}
			return err
		}
		if d.IsDir() {
			for _, s := range skip {
				if path == filepath.Join(dir, s) {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}

// Settle waits until process pid is quiet: less than idleCPU seconds of
// CPU over every period of quiet and dir unchanged in size, or until
// maxWait. It returns how long it waited.
func Settle(ctx context.Context, pid int, dir string, quiet time.Duration, idleCPU float64, maxWait time.Duration) (time.Duration, error) {
	return SettleAll(ctx, []int{pid}, []string{dir}, quiet, idleCPU, maxWait)
}

// SettleAll is Settle for a group of processes (a cluster's nodes): less
// than idleCPU seconds of CPU summed over pids in a period of quiet, and
// the summed size of dirs unchanged. It returns by maxWait even if quiet
// is longer.
func SettleAll(ctx context.Context, pids []int, dirs []string, quiet time.Duration, idleCPU float64, maxWait time.Duration) (time.Duration, error) {
	t0 := time.Now()
	dirsBytes := func() (int64, error) {
		var n int64
		for _, d := range dirs {
			b, err := DirBytes(d)
			if err != nil {
				return 0, err
			}
			n += b
		}
		return n, nil
	}
	last, err := ReadProcs(pids)
	if err != nil {
		return 0, err
	}
	lastSize, err := dirsBytes()
	if err != nil {
		return 0, err
	}
	for time.Since(t0) < maxWait {
		select {
		case <-ctx.Done():
			return time.Since(t0), ctx.Err()
		case <-time.After(min(quiet, maxWait-time.Since(t0))): // never past maxWait
		}
		p, err := ReadProcs(pids)
		if err != nil {
			return time.Since(t0), err
		}
		size, err := dirsBytes()
		if err != nil {
			return time.Since(t0), err
		}
		if p.CPUSeconds-last.CPUSeconds < idleCPU && size == lastSize {
			return time.Since(t0), nil
		}
		last, lastSize = p, size
	}
	return time.Since(t0), nil
}

// Stop asks process p to stop (SIGTERM) and waits until exited is closed
// (the caller's Wait returned), at most grace; then it kills p and waits
// for exited. It returns ErrKilled (wrapped) if it had to kill.
func Stop(p *os.Process, exited <-chan struct{}, grace time.Duration) error {
	select {
	case <-exited:
		return nil
	default:
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal pid %d: %w", p.Pid, err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(grace):
		err := p.Kill()
		<-exited
		return errors.Join(fmt.Errorf("pid %d did not stop within %v: %w", p.Pid, grace, ErrKilled), err)
	}
}

// ErrKilled: Stop had to kill the process.
var ErrKilled = errors.New("load: process killed")
