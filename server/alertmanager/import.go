package alertmanager

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/client_golang/prometheus"
)

// Import moves what a node kept in dir (DATA/alertmanager) before the
// Alertmanager was replicated into md: the configurations of
// dir/configs (one already in the metadata wins: it was set since) and
// the silences and notification logs of dir/state/<tenant> (snapshots
// with their state logs merged on top) as records (the metadata keeps
// the later of two records of a key). Each change is retried while the
// metadata has no leader; then dir is renamed dir + ".imported", so it
// is read once. No dir: nothing to do.
func Import(ctx context.Context, dir string, md Metadata, retention time.Duration) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	retry := func(f func(context.Context) error) error {
		for {
			err := f(ctx)
			if err == nil || !errors.Is(err, ErrUnavailable) {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}
	if cdir := filepath.Join(dir, "configs"); exists(cdir) {
		fs, err := NewFileStore(cdir)
		if err != nil {
			return err
		}
		tenants, err := fs.Tenants(ctx)
		if err != nil {
			return err
		}
		ms := NewMetaStore(md)
		for _, t := range tenants {
			if _, ok := md.Config(t); ok {
				continue
			}
			uc, err := fs.Get(ctx, t)
			if err != nil {
				return err
			}
			if err := retry(func(ctx context.Context) error { return ms.Set(ctx, t, uc) }); err != nil {
				return fmt.Errorf("import alertmanager config of tenant %s: %w", t, err)
			}
		}
	}
	if sdir := filepath.Join(dir, "state"); exists(sdir) {
		ents, err := os.ReadDir(sdir)
		if err != nil {
			return fmt.Errorf("import alertmanager state: %w", err)
		}
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			t := e.Name()
			recs, err := readTenantState(filepath.Join(sdir, t), retention)
			if err != nil {
				return fmt.Errorf("import alertmanager state of tenant %s: %w", t, err)
			}
			for _, r := range recs {
				if err := retry(func(ctx context.Context) error { return md.PutRecord(ctx, t, r) }); err != nil {
					return fmt.Errorf("import alertmanager state of tenant %s: %w", t, err)
				}
			}
		}
	}
	return os.Rename(dir, dir+".imported")
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// readTenantState loads a tenant's file state (snapshots, then the state
// logs merged on top, as newTenantAM does) and returns it as records,
// one per silence and per notification log entry.
func readTenantState(dir string, retention time.Duration) ([]Record, error) {
	discard := slog.New(slog.DiscardHandler)
	sil, err := silence.New(silence.Options{SnapshotFile: filepath.Join(dir, "silences"), Retention: retention, Logger: discard, Metrics: prometheus.NewRegistry()})
	if err != nil {
		return nil, err
	}
	nfl, err := nflog.New(nflog.Options{SnapshotFile: filepath.Join(dir, "nflog"), Retention: retention, Logger: discard, Metrics: prometheus.NewRegistry()})
	if err != nil {
		return nil, err
	}
	logs, _, err := readLogs(dir)
	if err != nil {
		return nil, err
	}
	for _, r := range logs {
		switch r.Kind {
		case KindSilences:
			err = sil.Merge(r.Payload)
		case KindNflog:
			err = nfl.Merge(r.Payload)
		}
		if err != nil {
			return nil, err
		}
	}
	var out []Record
	for _, part := range []struct {
		kind byte
		snap func(io.Writer) (int64, error)
	}{{KindSilences, sil.Snapshot}, {KindNflog, nfl.Snapshot}} {
		var buf bytes.Buffer
		if _, err := part.snap(&buf); err != nil {
			return nil, err
		}
		msgs, err := splitDelimited(buf.Bytes())
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			r, err := recordOf(part.kind, m)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// splitDelimited splits a stream of length-delimited messages (the
// library's snapshots) into the messages, each with its length prefix:
// the bytes the library broadcasts for one silence or entry.
func splitDelimited(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, errors.New("bad length-delimited message")
		}
		end := k + int(n)
		out = append(out, b[:end:end])
		b = b[end:]
	}
	return out, nil
}
