// Package atomicfile writes small files so that a crash leaves either the
// old content or the new, never a mix: the node's metadata checkpoint,
// rule groups, Alertmanager configurations and state, its data
// directory's marker files.
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
)

// WriteFile writes b to path through a synced temporary file (path +
// ".tmp", removed if the write fails) and a rename, then syncs the
// directory, so the rename is durable too.
func WriteFile(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir makes the entries of dir (files created, renamed or removed in
// it) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
