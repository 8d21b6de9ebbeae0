package engine

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/write"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of testdata/scenarios and testdata/keyschema.golden")

// TestScenarios runs the command scripts in testdata/scenarios. A script is
// a list of cases separated by blank lines; a case is a command line, input
// lines, "----", and the expected output. Commands:
//
//	open [chunk-samples=N] [partition=D] [retention=D] [evict-idle=D]   a new store
//	apply index=N tenant=T          input: one series per line: {labels} t:v t:v ...
//	checkpoint
//	restart                         close and reopen; prints the recovered index
//	select tenant=T mint=N maxt=N   input: one series selector
//	labels tenant=T mint=N maxt=N [name=L]   input: optional selector
//	keys [kind=c]                   the store's keys of a kind, decoded
//
// Run with -rewrite to write the actual output as expected.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.txt")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { runScenario(t, file) })
	}
}

type scenario struct {
	t    *testing.T
	fs   vfs.FS
	opts Options
	db   *DB
	g    *Group
}

func runScenario(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	sc := &scenario{t: t, fs: vfs.NewMem()}
	defer func() {
		if sc.db != nil {
			require.NoError(t, sc.db.Close())
		}
	}()
	var out strings.Builder
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); {
		if l := strings.TrimSpace(lines[i]); l == "" || strings.HasPrefix(l, "#") {
			out.WriteString(lines[i] + "\n")
			i++
			continue
		}
		start := i
		cmd := lines[i]
		i++
		var input []string
		for i < len(lines) && lines[i] != "----" {
			input = append(input, lines[i])
			i++
		}
		require.Less(t, i, len(lines), "%s:%d: case without ----", file, start+1)
		i++
		var want []string
		for i < len(lines) && lines[i] != "" {
			want = append(want, lines[i])
			i++
		}
		got := sc.run(cmd, input)
		if !*rewrite {
			require.Equal(t, strings.Join(want, "\n"), got, "%s:%d: %s", file, start+1, cmd)
		}
		out.WriteString(strings.Join(append([]string{cmd}, input...), "\n") + "\n----\n")
		if got != "" {
			out.WriteString(got + "\n")
		}
	}
	if *rewrite {
		require.NoError(t, os.WriteFile(file, []byte(strings.TrimRight(out.String(), "\n")+"\n"), 0o644))
	}
}

func args(t *testing.T, fields []string) map[string]string {
	m := map[string]string{}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		require.True(t, ok, "argument %q", f)
		m[k] = v
	}
	return m
}

func argInt(t *testing.T, m map[string]string, k string) int64 {
	switch m[k] {
	case "min":
		return math.MinInt64
	case "max":
		return math.MaxInt64
	}
	v, err := strconv.ParseInt(m[k], 10, 64)
	require.NoError(t, err, "argument %s", k)
	return v
}

func argDuration(t *testing.T, m map[string]string, k string) time.Duration {
	if m[k] == "" {
		return 0
	}
	d, err := time.ParseDuration(m[k])
	require.NoError(t, err)
	return d
}

func (sc *scenario) run(cmd string, input []string) string {
	t := sc.t
	fields := strings.Fields(cmd)
	a := args(t, fields[1:])
	switch fields[0] {
	case "open": // a new, empty store
		if sc.db != nil {
			require.NoError(t, sc.db.Close())
		}
		sc.fs = vfs.NewMem()
		sc.opts = Options{Dir: "db", FS: sc.fs, Partition: time.Hour}
		if a["chunk-samples"] != "" {
			sc.opts.ChunkSamples = int(argInt(t, a, "chunk-samples"))
		}
		if d := argDuration(t, a, "partition"); d != 0 {
			sc.opts.Partition = d
		}
		sc.opts.Retention = argDuration(t, a, "retention")
		sc.opts.EvictIdle = argDuration(t, a, "evict-idle")
		return sc.open()
	case "restart":
		require.NoError(t, sc.db.Close())
		return sc.open()
	case "checkpoint":
		require.NoError(t, sc.g.Checkpoint())
		return fmt.Sprintf("checkpoint at %d", sc.g.AppliedIndex())
	case "apply":
		bb := write.NewBuilder(a["tenant"])
		for _, l := range input {
			sel, rest, _ := strings.Cut(l, "}")
			lset, err := parser.NewParser(parser.Options{}).ParseMetric(sel + "}")
			require.NoError(t, err, "series %q", l)
			var smp []write.Sample
			for _, f := range strings.Fields(rest) {
				ts, v, _ := strings.Cut(f, ":")
				tv, err := strconv.ParseInt(ts, 10, 64)
				require.NoError(t, err)
				fv, err := strconv.ParseFloat(v, 64)
				require.NoError(t, err)
				smp = append(smp, write.Sample{T: tv, V: fv})
			}
			require.NoError(t, bb.Add(lset, smp))
		}
		errs, err := sc.g.Apply(uint64(argInt(t, a, "index")), write.Append(nil, bb.Batch()))
		if err != nil {
			return "error: " + err.Error()
		}
		if len(errs) == 0 {
			return "ok"
		}
		var out []string
		for _, e := range errs {
			out = append(out, fmt.Sprintf("series %d: %d rejected: %v", e.Series, e.Rejected, e.Err))
		}
		return strings.Join(out, "\n")
	case "select":
		ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(strings.Join(input, " "))
		require.NoError(t, err)
		var out []string
		for _, s := range selectAll(t, sc.g, a["tenant"], argInt(t, a, "mint"), argInt(t, a, "maxt"), ms...) {
			line := s.lset
			for _, x := range s.samples {
				line += fmt.Sprintf(" %d:%g", x.T, x.V)
			}
			out = append(out, line)
		}
		if len(out) == 0 {
			return "(none)"
		}
		return strings.Join(out, "\n")
	case "labels":
		var ms []*labels.Matcher
		if len(input) > 0 {
			var err error
			ms, err = parser.NewParser(parser.Options{}).ParseMetricSelector(strings.Join(input, " "))
			require.NoError(t, err)
		}
		q, err := sc.g.Querier(a["tenant"], argInt(t, a, "mint"), argInt(t, a, "maxt"))
		require.NoError(t, err)
		defer q.Close()
		var res []string
		if a["name"] == "" {
			res, _, err = q.LabelNames(context.Background(), nil, ms...)
		} else {
			res, _, err = q.LabelValues(context.Background(), a["name"], nil, ms...)
		}
		require.NoError(t, err)
		return fmt.Sprintf("%q", res)
	case "keys":
		return sc.keys(a["kind"])
	}
	t.Fatalf("unknown command %q", cmd)
	return ""
}

func (sc *scenario) open() string {
	var err error
	sc.db, err = Open(sc.opts)
	require.NoError(sc.t, err)
	g, idx, err := sc.db.OpenGroup(1)
	require.NoError(sc.t, err)
	sc.g = g
	return fmt.Sprintf("recovered to %d", idx)
}

// keys prints the store's keys of one kind (all if empty) in a readable
// form: partitions relative to 2^31, times and ids in decimal.
func (sc *scenario) keys(kind string) string {
	it, err := sc.db.pdb.NewIter(nil)
	require.NoError(sc.t, err)
	defer it.Close()
	var out []string
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) < prefixLen || (kind != "" && string(k[prefixLen-1]) != kind) {
			continue
		}
		out = append(out, describeKey(k, it.Value()))
	}
	return strings.Join(out, "\n")
}

func describeKey(k, v []byte) string {
	be := func(b []byte) uint64 {
		var x uint64
		for _, c := range b {
			x = x<<8 | uint64(c)
		}
		return x
	}
	g, tn, kind, rest := be(k[:4]), be(k[4:8]), k[8], k[9:]
	s := fmt.Sprintf("g%d t%d %c", g, tn, kind)
	part := func(b []byte) string { return fmt.Sprintf("part%+d", int64(be(b[:4]))-1<<31) }
	switch {
	case tn == 0 && kind == kindTenant:
		s += fmt.Sprintf(" %q -> %d", rest, be(v))
	case tn == 0 || kind == kindMeta && rest[0] == metaNextSeries:
		s += fmt.Sprintf(" %s -> %d", rest, be(v))
	case kind == kindSeries:
		s += fmt.Sprintf(" id%d -> %d bytes", be(rest), len(v))
	case kind == kindPostings:
		name, r, _ := readEscaped(nil, rest[4:])
		val, r, _ := readEscaped(nil, r)
		s += fmt.Sprintf(" %s %q=%q id%d", part(rest), name, val, be(r))
	case kind == kindChunk:
		_, m := binary.Uvarint(v)
		n, _ := chunkenc.NumSamples(v[m:])
		s += fmt.Sprintf(" %s id%d mint=%d samples=%d", part(rest), be(rest[4:12]), readTime(rest[12:]), n)
	case kind == kindEvicted:
		s += fmt.Sprintf(" id%d index%d t=%d", be(rest[:8]), be(rest[8:]), int64(be(v[:8])))
	case kind == kindOpen || kind == kindHash:
		s += fmt.Sprintf(" %x", rest)
	}
	return s
}
