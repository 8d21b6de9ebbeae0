//go:build unix

package raftgroup

import "syscall"

// statfsFree returns the bytes of dir's file system available to an
// unprivileged user (f_bavail: root's reserved blocks do not count, so
// the guard refuses before root's writes would eat into them).
func statfsFree(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
