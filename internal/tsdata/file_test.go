package tsdata

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

func TestReadFile(t *testing.T) {
	// One line longer than the reader's 1 MB buffer, to cross ReadSlice's
	// ErrBufferFull path.
	long := &Series{Labels: Labels{{"__name__", "long"}}}
	for i := range 300_000 {
		long.T = append(long.T, 1_700_000_000_000+int64(i)*1000)
		long.V = append(long.V, float64(i)/3)
	}
	short := &Series{Labels: Labels{{"__name__", "short"}}, T: []int64{1}, V: []float64{math.Float64frombits(staleNaN)}}

	var text bytes.Buffer
	text.WriteString("# tsdata v1: a comment\n\n")
	for _, s := range []*Series{long, short} {
		if err := WriteLine(&text, s); err != nil {
			t.Fatal(err)
		}
	}
	if text.Len() <= 1<<20 {
		t.Fatalf("test file is %d bytes, want a line longer than the 1 MB buffer", text.Len())
	}
	noNewline := bytes.TrimSuffix(text.Bytes(), []byte("\n"))

	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		data []byte
		gz   bool
	}{
		{"a.tsv", text.Bytes(), false},
		{"b.tsv.gz", text.Bytes(), true},
		{"c.tsv", noNewline, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			data := tc.data
			if tc.gz {
				var buf bytes.Buffer
				zw := gzip.NewWriter(&buf)
				if _, err := zw.Write(data); err != nil {
					t.Fatal(err)
				}
				if err := zw.Close(); err != nil {
					t.Fatal(err)
				}
				data = buf.Bytes()
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			var got []*Series
			if err := ReadFile(path, func(s *Series) error { got = append(got, s); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 {
				t.Fatalf("read %d series, want 2", len(got))
			}
			for i, want := range []*Series{long, short} {
				if d := diff(got[i], want); d != "" {
					t.Fatalf("series %d: %s", i, d)
				}
			}
		})
	}
}

func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.tsv")
	data := "# header\n{\"a\":\"b\"}\t1\t1\n{\"a\":\"c\"}\t1,0\t1,2\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	err := ReadFile(path, func(*Series) error { return nil })
	var pe *ParseError
	if !errors.As(err, &pe) || pe.File != path || pe.Line != 3 {
		t.Fatalf("ReadFile error = %v, want a *ParseError for %s line 3", err, path)
	}

	stop := errors.New("stop")
	var n int
	err = ReadFile(path, func(*Series) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("ReadFile = %v after %d calls, want fn's error after 1", err, n)
	}

	if err := ReadFile(filepath.Join(dir, "missing.tsv"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadFile of a missing file = %v, want os.ErrNotExist", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notgz.tsv.gz"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ReadFile(filepath.Join(dir, "notgz.tsv.gz"), nil); !errors.Is(err, gzip.ErrHeader) {
		t.Fatalf("ReadFile of a non-gzip .gz = %v, want gzip.ErrHeader", err)
	}
}

func TestFilesAndName(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"b/x.tsv.gz", "a.tsv", "b/c/y.tsv", "README.md", "b/z.tsv.gz.orig"} {
		p = filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, Name(dir, f))
	}
	if want := []string{"a", "b/c/y", "b/x"}; !slices.Equal(names, want) {
		t.Fatalf("names = %q, want %q", names, want)
	}
	if _, err := Files(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("Files of a missing directory: no error")
	}
}

func TestSharedDirEnv(t *testing.T) {
	t.Setenv("MYELIN_DATA", "/some/where")
	if got := SharedDir(); got != "/some/where" {
		t.Fatalf("SharedDir() = %q with MYELIN_DATA set, want /some/where", got)
	}
}

// TestSharedData reads every shared data file and checks the counts in the
// data README's table, the NaN bit patterns, that String matches Prometheus,
// that the recorded series belong to the shared half of the split, and that
// every series survives WriteLine+ParseLine bit-exact.
func TestSharedData(t *testing.T) {
	dir := RequireSharedDir(t)
	type counts struct{ series, samples, nans, stale int }
	want := map[string]counts{ // from the data README
		"recorded/node_15s":          {1079, 516666, 766, 766},
		"recorded/node_1s":           {1119, 8008385, 5956, 5956},
		"recorded/other_15s":         {57, 19208, 172, 172},
		"recorded/other_1s":          {173, 1246217, 204, 204},
		"recorded/prometheus_15s":    {292, 140078, 16466, 0},
		"recorded/prometheus_1s":     {292, 2101947, 247478, 288},
		"public/alp_samples":         {15, 15360, 0, 0},
		"public/ms_cloud_monitoring": {60, 225162, 0, 0},
		"public/nab_real":            {47, 321157, 0, 0},
	}
	files, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var total counts
	var seen []string
	for _, f := range files {
		name := Name(dir, f)
		seen = append(seen, name)
		var c counts
		var buf bytes.Buffer
		err := ReadFile(f, func(s *Series) error {
			c.series++
			c.samples += len(s.T)
			for _, v := range s.V {
				switch b := math.Float64bits(v); {
				case b == staleNaN:
					c.stale++
					c.nans++
				case b == normalNaN:
					c.nans++
				case math.IsNaN(v):
					return fmt.Errorf("%s: NaN pattern %#016x; the README says only two occur", s, b)
				}
			}
			if err := checkSeries(name, s, &buf); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := want[name]; !ok {
			t.Errorf("%s: not in the README's table", name)
		} else if c != w {
			t.Errorf("%s: series, samples, NaNs, stale = %v, want %v", name, c, w)
		}
		total.series += c.series
		total.samples += c.samples
		total.nans += c.nans
		total.stale += c.stale
	}
	if want := (counts{3134, 12594180, 271042, 7386}); total != want {
		t.Errorf("total series, samples, NaNs, stale = %v, want %v", total, want)
	}
	for name := range want {
		if !slices.Contains(seen, name) {
			t.Errorf("%s: in the README's table but not in %s", name, dir)
		}
	}
	t.Logf("read %d files, %d series, %d samples in %v", len(files), total.series, total.samples, time.Since(start))
}

// checkSeries checks what holds for every series of the shared data set.
// buf is scratch space.
func checkSeries(name string, s *Series, buf *bytes.Buffer) error {
	m := make(map[string]string, len(s.Labels))
	for _, l := range s.Labels {
		m[l.Name] = l.Value
	}
	if got, want := s.String(), labels.FromMap(m).String(); got != want {
		return fmt.Errorf("String() = %s, Prometheus says %s", got, want)
	}
	// The README's split: FNV-1a-64 of the label set with a "_15s" suffix of
	// job stripped is even for every recorded series in the shared half.
	if strings.HasPrefix(name, "recorded/") {
		m["job"] = strings.TrimSuffix(m["job"], "_15s")
		h := fnv.New64a()
		h.Write([]byte(labels.FromMap(m).String()))
		if h.Sum64()%2 != 0 {
			return fmt.Errorf("odd split hash: this series belongs to the hold-out half")
		}
	}
	buf.Reset()
	if err := WriteLine(buf, s); err != nil {
		return err
	}
	back, err := ParseLine(buf.Bytes())
	if err != nil {
		return fmt.Errorf("parse back: %w", err)
	}
	if d := diff(back, s); d != "" {
		return fmt.Errorf("round trip: %s", d)
	}
	return nil
}
