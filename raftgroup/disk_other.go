//go:build !unix

package raftgroup

import "errors"

// statfsFree is not implemented here: the guard then refuses writes only
// after one failed with a disk-full error.
func statfsFree(string) (uint64, error) {
	return 0, errors.ErrUnsupported
}
