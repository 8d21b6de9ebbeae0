package tsdata

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// ParseError is a malformed line in a file.
type ParseError struct {
	File string
	Line int // 1-based
	Err  error
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *ParseError) Unwrap() error { return e.Err }

// ReadFile calls fn for every series of the file at path, in file order.
// A name ending in ".gz" is gunzipped. It stops at the first error from
// parsing (a *ParseError) or from fn (returned unchanged). fn owns each Series.
func ReadFile(path string, fn func(*Series) error) (err error) {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer closeInto(&err, f)
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		defer closeInto(&err, zr)
		r = zr
	}
	return read(path, r, fn)
}

// closeInto closes c and joins its error, if any, into *err. (errors.Join
// with a nil error would still wrap *err, and ReadFile promises to return
// fn's error unchanged.)
func closeInto(err *error, c io.Closer) {
	if cerr := c.Close(); cerr != nil {
		*err = errors.Join(*err, cerr)
	}
}

// read is ReadFile after opening; name is for errors.
func read(name string, r io.Reader, fn func(*Series) error) error {
	// Lines reach a few hundred KB; ReadSlice plus a reused line buffer
	// avoids bufio.Scanner's 64 KB limit and an allocation per line.
	br := bufio.NewReaderSize(r, 1<<20)
	var line []byte
	for n := 1; ; n++ {
		line = line[:0]
		var err error
		for {
			var frag []byte
			frag, err = br.ReadSlice('\n')
			line = append(line, frag...)
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("read %s line %d: %w", name, n, err)
		}
		if len(line) > 0 && line[0] != '#' && line[0] != '\n' {
			s, perr := ParseLine(line)
			if perr != nil {
				return &ParseError{File: name, Line: n, Err: perr}
			}
			if ferr := fn(s); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

// Files returns every *.tsv.gz and *.tsv file below dir, recursively, sorted.
func Files(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".tsv.gz") || strings.HasSuffix(path, ".tsv")) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list data files in %s: %w", dir, err)
	}
	slices.Sort(files)
	return files, nil
}

// Name is the data set name of a file returned by Files(dir): its path
// relative to dir with forward slashes and without ".tsv.gz" or ".tsv",
// e.g. "recorded/node_1s".
func Name(dir, path string) string {
	rel, err := filepath.Rel(dir, path)
	if err != nil {
		rel = path
	}
	rel = filepath.ToSlash(rel)
	if s, ok := strings.CutSuffix(rel, ".tsv.gz"); ok {
		return s
	}
	return strings.TrimSuffix(rel, ".tsv")
}

// SharedDir returns the shared data directory: $MYELIN_DATA if set, else
// shared/data beside the module root (the nearest ancestor of the working
// directory holding go.mod), as in the layout work/main (repository) and
// work/shared/data. It returns "" if there is none.
//
// Tests that need the data skip when it is "" unless $CI is set; in CI
// missing data is a failure.
func SharedDir() string {
	if d := os.Getenv("MYELIN_DATA"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			d := filepath.Join(filepath.Dir(dir), "shared", "data")
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				return d
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// RequireSharedDir returns SharedDir for a test or benchmark that reads the
// shared data. If there is none it skips tb, unless $CI is set: in CI the
// data must be there, so it fails tb instead.
func RequireSharedDir(tb testing.TB) string {
	tb.Helper()
	d := SharedDir()
	if d == "" {
		if os.Getenv("CI") != "" {
			tb.Fatal("shared data directory not found (set MYELIN_DATA or put shared/data beside the repository); required when CI is set")
		}
		tb.Skip("shared data directory not found; set MYELIN_DATA or put shared/data beside the repository")
	}
	return d
}
