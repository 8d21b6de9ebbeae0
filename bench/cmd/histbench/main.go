// Command histbench measures the histogram chunk encodings on the
// native-histogram data set and prints, per kind of series and overall,
// bytes per sample, the ratio to Prometheus's chunks cut by its head rule
// and at 120 samples, and encode and decode ns per sample (best of -reps
// runs). Every series must round-trip bit for bit through our encodings;
// the method is in bench/internal/histmeasure.
//
//	go run ./bench/cmd/histbench [-data chunkenc/testdata/histograms.hd.gz] [-reps 3]
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
	data := fs.String("data", "chunkenc/testdata/histograms.hd.gz", "histdata file (make histdata)")
	reps := fs.Int("reps", 3, "timing runs per codec; the fastest counts")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	raw, err := histdata.ReadFile(*data)
	if err != nil {
		fmt.Fprintln(stderr, "histbench:", err)
		return 1
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
		byKind[kindOf(s.Labels)] = append(byKind[kindOf(s.Labels)], s)
	}
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	kinds = append(kinds, "all")
	byKind["all"] = series
	fmt.Fprintf(stdout, "%-12s %-10s %8s %8s %10s %10s %10s %10s %10s\n", "series", "codec", "samples", "chunks", "bytes/smp", "vs head", "vs @120", "enc ns/s", "dec ns/s")
	type row struct {
		name     string
		r        histmeasure.Result
		enc, dec time.Duration
	}
	for _, k := range kinds {
		var rows []row
		for _, c := range codecs() {
			var r histmeasure.Result
			enc, dec := time.Duration(1<<62), time.Duration(1<<62)
			for rep := range *reps {
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
				enc, dec = min(enc, te), min(dec, td)
				if rep == 0 {
					r = er
				}
			}
			rows = append(rows, row{c.Name(), r, enc, dec})
		}
		// rows[0] is prom-head, rows[1] prom@120.
		for _, x := range rows {
			bps, n := x.r.BytesPerSample(), float64(x.r.Samples)
			fmt.Fprintf(stdout, "%-12s %-10s %8d %8d %10.2f %10.3f %10.3f %10.0f %10.0f\n", k, x.name, x.r.Samples, x.r.Chunks, bps,
				bps/rows[0].r.BytesPerSample(), bps/rows[1].r.BytesPerSample(), float64(x.enc.Nanoseconds())/n, float64(x.dec.Nanoseconds())/n)
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
