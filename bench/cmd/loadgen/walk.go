package main

import (
	"io/fs"
	"path/filepath"
)

func walk(dir string, fn func(size int64)) error {
	return filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			fn(info.Size())
		}
		return nil
	})
}
