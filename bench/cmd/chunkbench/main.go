// Command chunkbench measures every chunk encoding on every data file under
// a directory in the tsdata format (see internal/tsdata) and prints, per
// data set and overall, bytes per sample, the ratio to Prometheus's XOR
// chunks (the baseline, 120 samples per chunk) and encode and decode
// ns/sample. Every series must round-trip bit-exactly in every encoding and
// chunk size; otherwise it prints the mismatches after the report and exits
// 1. The method is in bench/internal/chunkmeasure.
//
//	go run ./bench/cmd/chunkbench -data ../shared/data [-json] [-chunk-sizes 120,1024] [-encodings xor,pack] [-reps 3]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/myelindb/myelin/bench/internal/chunkmeasure"
	"github.com/myelindb/myelin/chunkenc"
	"github.com/myelindb/myelin/internal/tsdata"
)

// baselineChunkSamples is Prometheus's target chunk length.
const baselineChunkSamples = 120

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// config is one row per data set: a codec at a chunk size.
type config struct {
	codec        chunkmeasure.Codec
	chunkSamples int
	total        chunkmeasure.Result // over the data sets so far
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chunkbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", tsdata.SharedDir(), "directory of data files (*.tsv.gz, searched recursively)")
	sizesFlag := fs.String("chunk-sizes", "120,1024", "comma-separated samples per chunk for our encodings")
	encsFlag := fs.String("encodings", "", "comma-separated encodings to measure besides the prom-xor baseline (default all: "+encodingNames()+")")
	reps := fs.Int("reps", 3, "timed passes per encode and decode; the fastest counts")
	asJSON := fs.Bool("json", false, "print the rows as a JSON array")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	configs, err := parseConfigs(*sizesFlag, *encsFlag)
	if err == nil && *reps < 1 {
		err = fmt.Errorf("-reps %d: must be at least 1", *reps)
	}
	if err == nil && *dataDir == "" {
		err = errors.New("no -data directory given and no shared data directory found")
	}
	if err != nil {
		fmt.Fprintf(stderr, "chunkbench: %v\n", err)
		return 2
	}
	files, err := tsdata.Files(*dataDir)
	if err == nil && len(files) == 0 {
		err = fmt.Errorf("no data files under %s", *dataDir)
	}
	if err != nil {
		fmt.Fprintf(stderr, "chunkbench: %v\n", err)
		return 1
	}

	start := time.Now()
	var rows []chunkmeasure.Row
	var problems []string // mismatches and encode errors, printed after the report
	for _, path := range files {
		name := tsdata.Name(*dataDir, path)
		set, labels, err := load(path)
		if err != nil {
			fmt.Fprintf(stderr, "chunkbench: %v\n", err)
			return 1
		}
		var baseline int64 // configs[0] is the baseline
		for i := range configs {
			cfg := &configs[i]
			r, err := chunkmeasure.Measure(cfg.codec, set, chunkmeasure.Options{ChunkSamples: cfg.chunkSamples, Reps: *reps})
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %s/%d: %v", name, cfg.codec.Name(), cfg.chunkSamples, err))
				continue
			}
			for _, m := range r.Mismatches {
				series := "all series"
				if m.Series >= 0 {
					series = fmt.Sprintf("series %d %s", m.Series, labels[m.Series])
				}
				problems = append(problems, fmt.Sprintf("%s: %s/%d: %s sample %d: %s",
					name, cfg.codec.Name(), cfg.chunkSamples, series, m.Sample, m.Reason))
			}
			if more := r.MismatchCount - len(r.Mismatches); more > 0 {
				problems = append(problems, fmt.Sprintf("%s: %s/%d: %d more series mismatched",
					name, cfg.codec.Name(), cfg.chunkSamples, more))
			}
			if i == 0 {
				baseline = r.Bytes
			}
			cfg.total.Add(r)
			rows = append(rows, chunkmeasure.NewRow(name, cfg.codec.Name(), cfg.chunkSamples, r, baseline))
		}
		if !*asJSON {
			fmt.Fprintf(stderr, "chunkbench: %s: %d series, %d samples, %v so far\n",
				name, len(set), samples(set), time.Since(start).Round(time.Millisecond))
		}
	}
	for _, cfg := range configs {
		rows = append(rows, chunkmeasure.NewRow(chunkmeasure.OverallDataset, cfg.codec.Name(), cfg.chunkSamples,
			cfg.total, configs[0].total.Bytes))
	}

	if *asJSON {
		err = chunkmeasure.WriteJSON(stdout, rows)
	} else {
		err = chunkmeasure.WriteTable(stdout, rows)
	}
	if err != nil {
		fmt.Fprintf(stderr, "chunkbench: write report: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "chunkbench: %d files, %d samples, %v\n",
		len(files), configs[0].total.Samples, time.Since(start).Round(time.Millisecond))
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(stderr, "MISMATCH %s\n", p)
		}
		fmt.Fprintf(stderr, "chunkbench: round trip FAILED (%d problems listed)\n", len(problems))
		return 1
	}
	return 0
}

// parseConfigs returns the baseline followed by every selected encoding at
// every chunk size, in chunkenc.Encodings order.
func parseConfigs(sizesFlag, encsFlag string) ([]config, error) {
	var sizes []int
	for f := range strings.SplitSeq(sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > chunkenc.MaxSamples {
			return nil, fmt.Errorf("-chunk-sizes: %q is not a number in 1..%d", f, chunkenc.MaxSamples)
		}
		sizes = append(sizes, n)
	}
	encs := chunkenc.Encodings
	if encsFlag != "" {
		encs = nil
		for f := range strings.SplitSeq(encsFlag, ",") {
			enc, err := chunkenc.ParseEncoding(strings.TrimSpace(f))
			if err != nil {
				return nil, fmt.Errorf("-encodings: %w (known: %s)", err, encodingNames())
			}
			encs = append(encs, enc)
		}
	}
	configs := []config{{codec: chunkmeasure.PromXOR(), chunkSamples: baselineChunkSamples}}
	for _, enc := range encs {
		for _, n := range sizes {
			// One codec per config: codecs keep buffers, so they are not shared.
			configs = append(configs, config{codec: chunkmeasure.Ours(enc), chunkSamples: n})
		}
	}
	return configs, nil
}

func encodingNames() string {
	var names []string
	for _, enc := range chunkenc.Encodings {
		names = append(names, enc.String())
	}
	return strings.Join(names, ",")
}

// load reads one data file. labels[i] names set[i] for mismatch reports.
func load(path string) (set []chunkmeasure.Series, labels []string, err error) {
	err = tsdata.ReadFile(path, func(s *tsdata.Series) error {
		set = append(set, chunkmeasure.Series{T: s.T, V: s.V})
		labels = append(labels, s.Labels.String())
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	return set, labels, nil
}

func samples(set []chunkmeasure.Series) int {
	n := 0
	for _, s := range set {
		n += len(s.T)
	}
	return n
}
