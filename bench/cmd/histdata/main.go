// Command histdata builds the native-histogram data set,
// chunkenc/testdata/histograms.hd.gz (format: internal/histdata), from the
// classic histograms recorded in the shared data (README, "Native
// histogram data set"):
//
//	go run ./bench/cmd/histdata -data ../shared/data -out chunkenc/testdata/histograms.hd.gz
//
// Every classic histogram (the _bucket series with le, plus _sum and
// _count) of the recorded files becomes four series:
//
//  1. nhcb: integer native histograms with custom buckets (schema -53),
//     converted sample by sample by Prometheus's own util/convertnhcb, as
//     Prometheus 3 does with convert_classic_histograms_to_nhcb.
//  2. exp: integer exponential histograms at schema 3 (client_golang's
//     NativeHistogramBucketFactor 1.1), each new classic observation placed
//     in an exponential bucket as if spread uniformly within its classic
//     bucket (histogram_quantile's assumption; histconv.Exponential).
//  3. nhcb:rate1m and exp:rate1m: float histograms as a recording rule
//     rate(x[1m]) evaluated every 15 s writes them, with Prometheus's
//     arithmetic (see rate).
//
// Staleness markers in the classic series (a target restart) become
// stale histogram samples (Sum = StaleNaN), as Prometheus's head stores
// them; a count that goes down gets the CounterReset hint.
//
// The output is deterministic: the same input gives the same bytes.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/util/convertnhcb"

	"github.com/myelindb/myelin/bench/internal/histconv"
	"github.com/myelindb/myelin/internal/histdata"
	"github.com/myelindb/myelin/internal/tsdata"
)

func main() {
	data := flag.String("data", tsdata.SharedDir(), "shared data directory (its recorded/*.tsv.gz are read)")
	out := flag.String("out", "chunkenc/testdata/histograms.hd.gz", "output file")
	tsdbDir := flag.String("tsdb", "", "instead of converting the shared data, read the native histograms of this Prometheus data directory")
	flag.Parse()
	if *tsdbDir != "" {
		if err := writeRecorded(*tsdbDir, *out); err != nil {
			fmt.Fprintln(os.Stderr, "histdata:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*data, *out); err != nil {
		fmt.Fprintln(os.Stderr, "histdata:", err)
		os.Exit(1)
	}
}

// classic is one classic histogram: its bucket series by le, its sum and
// count series.
type classic struct {
	name   string // base metric name
	labels tsdata.Labels
	les    []float64
	bucket map[float64]*tsdata.Series
	sum    *tsdata.Series
	count  *tsdata.Series
}

func run(dataDir, out string) error {
	if dataDir == "" {
		return fmt.Errorf("no shared data directory: pass -data")
	}
	files, err := filepath.Glob(filepath.Join(dataDir, "recorded", "*.tsv.gz"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	var all []histdata.Series
	stats := map[string][2]int{}
	for _, f := range files {
		hists := map[string]*classic{}
		err := tsdata.ReadFile(f, func(s *tsdata.Series) error {
			name := labelValue(s.Labels, "__name__")
			var base, le string
			var rest tsdata.Labels
			for _, l := range s.Labels {
				switch l.Name {
				case "__name__":
				case "le":
					le = l.Value
				default:
					rest = append(rest, l)
				}
			}
			switch {
			case strings.HasSuffix(name, "_bucket") && le != "":
				base = strings.TrimSuffix(name, "_bucket")
			case strings.HasSuffix(name, "_sum") && le == "":
				base = strings.TrimSuffix(name, "_sum")
			case strings.HasSuffix(name, "_count") && le == "":
				base = strings.TrimSuffix(name, "_count")
			default:
				return nil
			}
			key := base + rest.String()
			c := hists[key]
			if c == nil {
				c = &classic{name: base, labels: rest, bucket: map[float64]*tsdata.Series{}}
				hists[key] = c
			}
			switch {
			case le != "":
				v, err := strconv.ParseFloat(le, 64)
				if err != nil {
					return fmt.Errorf("%s: le %q: %w", s, le, err)
				}
				c.bucket[v] = s
				c.les = append(c.les, v)
			case strings.HasSuffix(name, "_sum"):
				c.sum = s
			default:
				c.count = s
			}
			return nil
		})
		if err != nil {
			return err
		}
		keys := make([]string, 0, len(hists))
		for k, c := range hists {
			if len(c.bucket) > 0 && c.sum != nil && c.count != nil {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			c := hists[k]
			sort.Float64s(c.les)
			ss, err := convert(c)
			if err != nil {
				return fmt.Errorf("%s %s: %w", filepath.Base(f), k, err)
			}
			for _, s := range ss {
				kind := s.Labels[strings.LastIndex(s.Labels, "kind=")+6:]
				kind = kind[:strings.IndexByte(kind, '"')]
				st := stats[kind]
				st[0]++
				st[1] += s.Len()
				stats[kind] = st
				if s.Len() > 0 {
					all = append(all, s)
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := histdata.Write(&buf, all); err != nil {
		return err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	kinds := make([]string, 0, len(stats))
	for k := range stats {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Printf("%-12s %4d series %8d samples\n", k, stats[k][0], stats[k][1])
	}
	fmt.Printf("wrote %s: %d series, %d bytes\n", out, len(all), buf.Len())
	return nil
}

// writeRecorded writes the native histograms of a Prometheus data
// directory (scripts/record-native-histograms.sh) as a histdata file.
func writeRecorded(dir, out string) error {
	series, err := readRecorded(dir)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := histdata.Write(&buf, series); err != nil {
		return err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	n := 0
	for _, s := range series {
		n += s.Len()
	}
	fmt.Printf("wrote %s: %d series, %d samples, %d bytes\n", out, len(series), n, buf.Len())
	return nil
}

func labelValue(ls tsdata.Labels, name string) string {
	for _, l := range ls {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// point is the classic histogram at one scrape.
type point struct {
	t     int64
	stale bool
	cum   []float64 // cumulative count per le (les order)
	sum   float64
	count float64
}

// points aligns the bucket, sum and count series on the timestamps all of
// them have.
func points(c *classic) []point {
	idx := func(s *tsdata.Series) map[int64]float64 {
		m := make(map[int64]float64, len(s.T))
		for i, t := range s.T {
			m[t] = s.V[i]
		}
		return m
	}
	bs := make([]map[int64]float64, len(c.les))
	for i, le := range c.les {
		bs[i] = idx(c.bucket[le])
	}
	sums, counts := idx(c.sum), idx(c.count)
	var ps []point
	for _, t := range c.count.T {
		p := point{t: t, count: counts[t]}
		var ok bool
		if p.sum, ok = sums[t]; !ok {
			continue
		}
		p.stale = value.IsStaleNaN(p.count)
		all := true
		for _, b := range bs {
			v, ok := b[t]
			if !ok {
				all = false
				break
			}
			p.stale = p.stale || value.IsStaleNaN(v)
			p.cum = append(p.cum, v)
		}
		if all {
			ps = append(ps, p)
		}
	}
	return ps
}

func seriesLabels(c *classic, kind string) string {
	ls := append(tsdata.Labels{{Name: "__name__", Value: c.name}}, c.labels...)
	ls = append(ls, tsdata.Label{Name: "kind", Value: kind})
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	return ls.String()
}

// convert returns the four series of a classic histogram.
func convert(c *classic) ([]histdata.Series, error) {
	ps := points(c)
	nhcb := histdata.Series{Labels: seriesLabels(c, "nhcb"), Kind: histdata.KindInt}
	exp := histdata.Series{Labels: seriesLabels(c, "exp"), Kind: histdata.KindInt}
	var nh, eh []*histogram.Histogram // nil for a stale sample
	conv, err := histconv.NewExponential(3, c.les)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if p.stale {
			nhcb.T = append(nhcb.T, p.t)
			nhcb.H = append(nhcb.H, histconv.From(&histogram.Histogram{Sum: math.Float64frombits(value.StaleNaN)}))
			exp.T = append(exp.T, p.t)
			exp.H = append(exp.H, nhcb.H[len(nhcb.H)-1])
			nh, eh = append(nh, nil), append(eh, nil)
			continue
		}
		th := convertnhcb.NewTempHistogram()
		for i, le := range c.les {
			if err := th.SetBucketCount(le, p.cum[i]); err != nil {
				return nil, fmt.Errorf("at %d: %w", p.t, err)
			}
		}
		if err := th.SetCount(p.count); err != nil {
			return nil, fmt.Errorf("at %d: %w", p.t, err)
		}
		if err := th.SetSum(p.sum); err != nil {
			return nil, fmt.Errorf("at %d: %w", p.t, err)
		}
		h, fh, err := th.Convert()
		if err != nil {
			return nil, fmt.Errorf("at %d: %w", p.t, err)
		}
		if fh != nil {
			return nil, fmt.Errorf("at %d: non-integer classic counts", p.t)
		}
		e, err := conv.Next(p.cum, p.count, p.sum)
		if err != nil {
			return nil, fmt.Errorf("at %d: %w", p.t, err)
		}
		for _, x := range []struct {
			s    *histdata.Series
			h    *histogram.Histogram
			prev *[]*histogram.Histogram
		}{{&nhcb, h, &nh}, {&exp, e, &eh}} {
			if k := len(*x.prev); k > 0 && (*x.prev)[k-1] != nil && x.h.ToFloat(nil).DetectReset((*x.prev)[k-1].ToFloat(nil)) {
				x.h.CounterResetHint = histogram.CounterReset
			}
			*x.prev = append(*x.prev, x.h)
			x.s.T = append(x.s.T, p.t)
			x.s.H = append(x.s.H, histconv.From(x.h))
		}
	}
	return []histdata.Series{
		nhcb, exp,
		rate(seriesLabels(c, "nhcb:rate1m"), nhcb.T, nh),
		rate(seriesLabels(c, "exp:rate1m"), exp.T, eh),
	}, nil
}

// rate evaluates rate(x[1m]) every 15 s as a recording rule does, with
// Prometheus's arithmetic (promql's histogramRate and extrapolatedRate,
// v0.314.0): stale samples are not in the range; the last histogram minus
// the first, plus the histogram before each counter reset, compacted; then
// multiplied by the extrapolation factor over the range's seconds. The
// result is a gauge histogram.
func rate(labels string, ts []int64, hs []*histogram.Histogram) histdata.Series {
	s := histdata.Series{Labels: labels, Kind: histdata.KindFloat}
	if len(ts) == 0 {
		return s
	}
	const window, step = 60_000, 15_000
	var pts []int
	for t := (ts[0]/step + 1) * step; t <= ts[len(ts)-1]; t += step {
		pts = pts[:0]
		for i, pt := range ts {
			if pt > t-window && pt <= t && hs[i] != nil {
				pts = append(pts, i)
			}
		}
		if len(pts) < 2 {
			continue
		}
		first, last := hs[pts[0]].ToFloat(nil), hs[pts[len(pts)-1]].ToFloat(nil)
		h, _, _, err := last.Sub(first)
		if err != nil {
			continue
		}
		for j := 1; j < len(pts); j++ {
			if hs[pts[j]].ToFloat(nil).DetectReset(hs[pts[j-1]].ToFloat(nil)) {
				if _, _, _, err := h.Add(hs[pts[j-1]].ToFloat(nil)); err != nil {
					continue
				}
			}
		}
		h.CounterResetHint = histogram.GaugeType
		h = h.Compact(0)
		firstT, lastT := ts[pts[0]], ts[pts[len(pts)-1]]
		durationToStart := float64(firstT-(t-window)) / 1000
		durationToEnd := float64(t-lastT) / 1000
		sampled := float64(lastT-firstT) / 1000
		avg := sampled / float64(len(pts)-1)
		threshold := avg * 1.1
		if durationToStart >= threshold {
			durationToStart = avg / 2
		}
		if h.Count > 0 && first.Count >= 0 {
			if toZero := sampled * (first.Count / h.Count); toZero < durationToStart {
				durationToStart = toZero
			}
		}
		if durationToEnd >= threshold {
			durationToEnd = avg / 2
		}
		factor := (sampled + durationToStart + durationToEnd) / sampled
		factor /= window / 1000
		h.Mul(factor)
		s.T = append(s.T, t)
		s.FH = append(s.FH, histconv.FromFloat(h))
	}
	return s
}
