package main

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// Pebble's block cache by default (-storage.cache-size 0): a sixteenth of
// the memory the node may use, between 64 MiB and 512 MiB. The cache
// holds blocks that reads brought in, allocated outside the Go heap as
// they come, so it costs memory only where queries read: ingest alone
// leaves it empty (docs/design.md, "Reading a long range"). 512 MiB
// holds the 30-day panel's whole store (111 MiB for 1,000 series at a
// minute) four times over; at the 64 MiB of before every run of it
// reloaded a third of its blocks from the OS (1.65 s of CPU per query
// against 1.37 s at 512 MiB). The floor is the former default, for
// small machines.
const (
	minAutoCacheBytes = 64 << 20
	maxAutoCacheBytes = 512 << 20
)

// autoCacheBytes is the block cache size for a node that may use
// memBytes of memory (0: unknown).
func autoCacheBytes(memBytes int64) int64 {
	return min(max(memBytes/16, minAutoCacheBytes), maxAutoCacheBytes)
}

// memoryLimit returns the memory this process may use: the machine's
// (MemTotal in /proc/meminfo), or its cgroup's limit (cgroup v2
// memory.max) if that is lower; 0 if neither can be read.
func memoryLimit() int64 {
	total := readMemTotal("/proc/meminfo")
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (total == 0 || n < total) {
			return n
		}
	}
	return total
}

// readMemTotal returns MemTotal of a /proc/meminfo file in bytes, 0 if
// it cannot be read.
func readMemTotal(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "MemTotal:" && f[2] == "kB" {
			if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil && kb > 0 {
				return kb << 10
			}
		}
	}
	return 0
}
