package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAutoCacheBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		mem  int64
		want int64
	}{
		{"unknown", 0, 64 << 20},
		{"512 MiB machine", 512 << 20, 64 << 20},
		{"2 GiB", 2 << 30, 128 << 20},
		{"4 GiB", 4 << 30, 256 << 20},
		{"24 GiB", 24 << 30, 512 << 20},
		{"1 TiB", 1 << 40, 512 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, autoCacheBytes(tc.mem))
		})
	}
}

func TestReadMemTotal(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, text string
		want       int64
	}{
		{"linux", "MemTotal:       24684220 kB\nMemFree:        10284628 kB\n", 24684220 << 10},
		{"not first", "Foo: 1 kB\nMemTotal: 1024 kB\n", 1 << 20},
		{"missing", "MemFree: 1 kB\n", 0},
		{"garbled", "MemTotal: lots kB\n", 0},
		{"other unit", "MemTotal: 1024 MB\n", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			require.NoError(t, os.WriteFile(p, []byte(tc.text), 0o644))
			require.Equal(t, tc.want, readMemTotal(p))
		})
	}
	require.Zero(t, readMemTotal(filepath.Join(dir, "absent")))
}
