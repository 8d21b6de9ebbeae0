// Command histbench measures the histogram chunk encodings on the
// native-histogram data set and prints, per kind of series and overall,
// bytes per sample, the ratio to Prometheus's chunks cut by its head rule
// and at 120 samples, and encode and decode ns per sample with their
// ratios to Prometheus's head-cut chunks (best of -reps interleaved runs). Every series must round-trip bit for bit through our encodings;
// the method is in bench/internal/histmeasure.
//
//	go run ./bench/cmd/histbench [-data file1,file2] [-reps 3]
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/myelindb/myelin/bench/internal/histmeasure"
	"github.com/myelindb/myelin/internal/histdata"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("histbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "chunkenc/testdata/histograms.hd.gz,chunkenc/testdata/histograms-recorded.hd.gz", "histdata files, comma-separated (make histdata, make histdata-record)")
	reps := fs.Int("reps", 3, "timing runs per codec; the fastest counts")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var raw []histdata.Series
	for _, path := range strings.Split(*data, ",") {
		ss, err := histdata.ReadFile(path)
		if err != nil {
			fmt.Fprintln(stderr, "histbench:", err)
			return 1
		}
		raw = append(raw, ss...)
	}
	series := histmeasure.Load(raw)
	if err := histmeasure.CheckRoundTrip(series, 120, 1024); err != nil {
		fmt.Fprintln(stderr, "histbench:", err)
		return 1
	}
	codecs := func() []histmeasure.Codec {
		return []histmeasure.Codec{
			histmeasure.Prom(histmeasure.CutHead), histmeasure.Prom(120), histmeasure.Prom(1024),
			histmeasure.Ours(120), histmeasure.Ours(1024),
		}
	}
	byKind := map[string][]histmeasure.Series{}
	for _, s := range series {
		k := kindOf(s.Labels)
		if k == "recorded" && s.Kind == histdata.KindFloat {
			k = "recorded:float" // recording-rule output
		}
		byKind[k] = append(byKind[k], s)
	}
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	kinds = append(kinds, "all")
	byKind["all"] = series
	fmt.Fprintf(stdout, "%-12s %-10s %8s %8s %10s %10s %10s %10s %10s %10s %10s\n", "series", "codec", "samples", "chunks", "bytes/smp", "vs head", "vs @120", "enc ns/s", "dec ns/s", "enc/head", "dec/head")
	type row struct {
		name     string
		r        histmeasure.Result
		enc, dec time.Duration
	}
	// The runs interleave: every rep measures every kind and codec once,
	// and each keeps its fastest rep, so a burst of load from other
	// processes on a shared machine hits all codecs alike rather than
	// whichever ran during it.
	cs := make(map[string][]histmeasure.Codec, len(kinds))
	rows := make(map[string][]row, len(kinds))
	for _, k := range kinds {
		cs[k] = codecs()
		for _, c := range cs[k] {
			rows[k] = append(rows[k], row{name: c.Name(), enc: 1 << 62, dec: 1 << 62})
		}
	}
	for rep := range *reps {
		for _, k := range kinds {
			for i, c := range cs[k] {
				x := &rows[k][i]
				t0 := time.Now()
				er, err := histmeasure.EncodeAll(c, byKind[k])
				te := time.Since(t0)
				if err != nil {
					fmt.Fprintln(stderr, "histbench:", c.Name(), err)
					return 1
				}
				t0 = time.Now()
				dr, err := c.Decode()
				td := time.Since(t0)
				if err != nil {
					fmt.Fprintln(stderr, "histbench:", c.Name(), err)
					return 1
				}
				if dr.Samples != er.Samples {
					fmt.Fprintf(stderr, "histbench: %s decoded %d of %d samples\n", c.Name(), dr.Samples, er.Samples)
					return 1
				}
				x.enc, x.dec = min(x.enc, te), min(x.dec, td)
				if rep == 0 {
					x.r = er
				}
			}
		}
	}
	for _, k := range kinds {
		// rows[k][0] is prom-head, rows[k][1] prom@120.
		base := rows[k][0]
		for _, x := range rows[k] {
			bps, n := x.r.BytesPerSample(), float64(x.r.Samples)
			fmt.Fprintf(stdout, "%-12s %-10s %8d %8d %10.2f %10.3f %10.3f %10.0f %10.0f %10.2f %10.2f\n", k, x.name, x.r.Samples, x.r.Chunks, bps,
				bps/base.r.BytesPerSample(), bps/rows[k][1].r.BytesPerSample(), float64(x.enc.Nanoseconds())/n, float64(x.dec.Nanoseconds())/n,
				float64(x.enc)/float64(base.enc), float64(x.dec)/float64(base.dec))
		}
	}
	return 0
}

// kindOf returns the kind label of a series ({..., kind="exp", ...}).
func kindOf(labels string) string {
	i := strings.Index(labels, `kind="`)
	if i < 0 {
		return "other"
	}
	k := labels[i+6:]
	return k[:strings.IndexByte(k, '"')]
}
