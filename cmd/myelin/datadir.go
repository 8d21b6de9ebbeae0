package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/myelindb/myelin/internal/atomicfile"
)

// lockDataDir takes an exclusive lock on dir (DATA/LOCK, flock) for the
// life of the process, so a second process on the same directory stops
// at once with a message that names the directory and the holder, rather
// than deep inside a store with "resource temporarily unavailable". The
// returned function releases it.
func lockDataDir(dir string) (release func() error, err error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(path); rerr == nil && len(strings.TrimSpace(string(b))) > 0 {
			holder = " (pid " + strings.TrimSpace(string(b)) + ")"
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data directory %s is in use by another myelin process%s: stop it, or give this one another -data.dir", dir, holder)
		}
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() error {
		return errors.Join(syscall.Flock(int(f.Fd()), syscall.LOCK_UN), f.Close())
	}, nil
}

// nodeIDFile holds a node's ID in its data directory.
const nodeIDFile = "node-id"

// resolveNodeID returns this node's ID: the flag's, else the one stored in
// dir, else (first start) the host name cleaned to the ID alphabet; and
// stores it. A flag that contradicts the stored ID is an error: the
// cluster's metadata and the Raft groups know the node by it.
func resolveNodeID(dir, flagID string) (string, error) {
	path := filepath.Join(dir, nodeIDFile)
	b, err := os.ReadFile(path)
	stored := strings.TrimSpace(string(b))
	switch {
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("read node ID: %w", err)
	case stored != "" && flagID != "" && stored != flagID:
		return "", fmt.Errorf("data directory %s belongs to node %q, not -cluster.node-id %q: start it with -cluster.node-id %s (or none), or give this node another -data.dir",
			dir, stored, flagID, stored)
	case stored != "":
		return stored, nil
	}
	id := flagID
	if id == "" {
		id = defaultNodeID()
	}
	if err := atomicfile.WriteFile(path, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("store node ID: %w", err)
	}
	return id, nil
}

// defaultNodeID is the host name in the ID alphabet, "myelin" without one.
func defaultNodeID() string {
	h, _ := os.Hostname()
	h = strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '-', r == '_':
			return r
		}
		return '-'
	}, h)
	h = strings.Trim(h, "-")
	if len(h) > 64 {
		h = h[:64]
	}
	if h == "" {
		return "myelin"
	}
	return h
}
