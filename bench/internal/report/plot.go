package report

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/myelindb/myelin/bench/internal/chunkmeasure"
	"github.com/myelindb/myelin/bench/internal/load"
	"github.com/myelindb/myelin/bench/internal/query"
)

var (
	myelinColor = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	promColor   = color.RGBA{R: 0xe6, G: 0x52, B: 0x2c, A: 0xff}
)

// WritePlots writes the plots of in into dir, named prefix-<what>.<format>,
// and returns their base names. format is "svg" or "png".
func WritePlots(dir, prefix, format string, in Input) ([]string, error) {
	if format != "svg" && format != "png" {
		return nil, fmt.Errorf("plot format %q: want svg or png", format)
	}
	var names []string
	var errs []error
	for _, pl := range []struct {
		what string
		make func(Input) (*plot.Plot, error)
	}{
		{"ingest", ingestPlot},
		{"queries", queryPlot},
		{"encodings", encodingPlot},
	} {
		p, err := pl.make(in)
		if err != nil {
			errs = append(errs, fmt.Errorf("plot %s: %w", pl.what, err))
			continue
		}
		if p == nil {
			continue // nothing to plot
		}
		name := prefix + "-" + pl.what + "." + format
		if err := save(p, filepath.Join(dir, name), format); err != nil {
			errs = append(errs, err)
			continue
		}
		names = append(names, name)
	}
	return names, errors.Join(errs...)
}

func save(p *plot.Plot, path, format string) (err error) {
	const w, h = 16 * vg.Centimeter, 9 * vg.Centimeter
	var c interface {
		vg.CanvasSizer
		io.WriterTo
	}
	if format == "png" {
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(120))}
	} else {
		c = vgsvg.New(w, h)
	}
	p.Draw(draw.New(c))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	_, err = c.WriteTo(f)
	return err
}

// ingestPlot: accepted samples/s over time, one line per server.
func ingestPlot(in Input) (*plot.Plot, error) {
	if len(in.Myelin.Rate) == 0 && len(in.Prometheus.Rate) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "Ingest: accepted samples per second"
	p.X.Label.Text = "seconds since the first request"
	p.Y.Label.Text = "samples/s"
	p.Legend.Top = true
	for _, s := range []struct {
		name string
		r    load.Result
		c    color.Color
	}{{"Myelin", in.Myelin, myelinColor}, {in.BaselineName(), in.Prometheus, promColor}} {
		xys := make(plotter.XYs, len(s.r.Rate))
		for i, pt := range s.r.Rate {
			xys[i] = plotter.XY{X: pt.Seconds, Y: pt.SamplesPerSec}
		}
		if len(xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		l.Color = s.c
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.name, l)
	}
	p.Add(plotter.NewGrid())
	p.Y.Min = 0
	return p, nil
}

// queryPlot: median latency per query (markers) with a bar up to the
// max of the runs, side by side, on a log scale: latencies span 1 ms to
// seconds.
func queryPlot(in Input) (*plot.Plot, error) {
	if len(in.Myelin.Queries) == 0 {
		return nil, nil
	}
	var names []string
	for _, q := range in.Myelin.Queries {
		names = append(names, q.Name)
	}
	p := plot.New()
	p.Title.Text = "Query latency: median of the runs (marker) and max (bar)"
	p.Y.Label.Text = "ms"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	for i, s := range []struct {
		name string
		r    load.Result
		c    color.Color
	}{{"Myelin", in.Myelin, myelinColor}, {in.BaselineName(), in.Prometheus, promColor}} {
		byName := map[string]query.Result{}
		for _, q := range s.r.Queries {
			byName[q.Name] = q
		}
		var pts struct {
			plotter.XYs
			plotter.YErrors
		}
		for j, name := range names {
			q, ok := byName[name]
			if !ok || q.MedianS <= 0 {
				continue
			}
			pts.XYs = append(pts.XYs, plotter.XY{X: float64(j) + 0.15*float64(2*i-1), Y: q.MedianS * 1e3})
			pts.YErrors = append(pts.YErrors, struct{ Low, High float64 }{0, (q.MaxS - q.MedianS) * 1e3})
		}
		if len(pts.XYs) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(pts.XYs)
		if err != nil {
			return nil, err
		}
		sc.Color = s.c
		sc.Shape = draw.CircleGlyph{}
		sc.Radius = vg.Points(3)
		eb, err := plotter.NewYErrorBars(pts)
		if err != nil {
			return nil, err
		}
		eb.Color = s.c
		eb.Width = vg.Points(1.2)
		p.Add(sc, eb)
		p.Legend.Add(s.name, sc)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = 0.5
	p.X.Tick.Label.XAlign = draw.XRight
	p.Add(plotter.NewGrid())
	return p, nil
}

// encodingPlot: bytes per sample of every encoding and chunk size on the
// shared data, overall.
func encodingPlot(in Input) (*plot.Plot, error) {
	var names []string
	var v plotter.Values
	for _, c := range in.Chunks {
		if c.Dataset != chunkmeasure.OverallDataset {
			continue
		}
		name := fmt.Sprintf("%s/%d", c.Encoding, c.ChunkSamples)
		if c.Encoding == "prom-xor" {
			name = fmt.Sprintf("Prometheus XOR/%d", c.ChunkSamples)
		}
		names = append(names, name)
		v = append(v, c.BytesPerSample)
	}
	if len(v) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "Chunk encodings on the shared data: bytes per sample"
	p.Y.Label.Text = "bytes/sample"
	b, err := plotter.NewBarChart(v, vg.Points(20))
	if err != nil {
		return nil, err
	}
	b.Color = myelinColor
	b.LineStyle.Width = 0
	p.Add(b)
	p.NominalX(names...)
	p.Add(plotter.NewGrid())
	return p, nil
}
