package raftgroup

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"

	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/types"
)

// faultVFS is raft-wal's file system over real files that fails the way a
// full disk does while full is set: creating a preallocated file fails
// with ENOSPC after creating it empty (as fallocate does), and a write
// that would grow a file past its size fails with ENOSPC; writes inside
// the allocated size succeed. With failWrites every write and sync fails
// with EIO.
type faultVFS struct {
	base       *walfs.FS
	full       atomic.Bool
	failWrites atomic.Bool
	creates    atomic.Int64 // failed preallocations
}

var _ types.VFS = (*faultVFS)(nil)

func newFaultVFS() *faultVFS { return &faultVFS{base: walfs.New()} }

func (f *faultVFS) ListDir(dir string) ([]string, error) { return f.base.ListDir(dir) }
func (f *faultVFS) Delete(dir, name string) error        { return f.base.Delete(dir, name) }
func (f *faultVFS) OpenReader(dir, name string) (types.ReadableFile, error) {
	return f.base.OpenReader(dir, name)
}

func (f *faultVFS) OpenWriter(dir, name string) (types.WritableFile, error) {
	wf, err := f.base.OpenWriter(dir, name)
	if err != nil {
		return nil, err
	}
	return &faultFile{WritableFile: wf, fs: f, path: filepath.Join(dir, name)}, nil
}

func (f *faultVFS) Create(dir, name string, size uint64) (types.WritableFile, error) {
	if f.full.Load() && size > 0 {
		wf, err := f.base.Create(dir, name, 0)
		if err == nil {
			wf.Close()
		}
		f.creates.Add(1)
		return nil, &os.PathError{Op: "fallocate", Path: filepath.Join(dir, name), Err: syscall.ENOSPC}
	}
	wf, err := f.base.Create(dir, name, size)
	if err != nil {
		return nil, err
	}
	return &faultFile{WritableFile: wf, fs: f, path: filepath.Join(dir, name)}, nil
}

type faultFile struct {
	types.WritableFile
	fs   *faultVFS
	path string
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if f.fs.failWrites.Load() {
		return 0, &os.PathError{Op: "write", Path: f.path, Err: syscall.EIO}
	}
	if f.fs.full.Load() {
		st, err := os.Stat(f.path)
		if err != nil {
			return 0, err
		}
		if off+int64(len(p)) > st.Size() {
			return 0, &os.PathError{Op: "write", Path: f.path, Err: syscall.ENOSPC}
		}
	}
	return f.WritableFile.WriteAt(p, off)
}

func (f *faultFile) Sync() error {
	if f.fs.failWrites.Load() {
		return &os.PathError{Op: "fsync", Path: f.path, Err: syscall.EIO}
	}
	return f.WritableFile.Sync()
}
