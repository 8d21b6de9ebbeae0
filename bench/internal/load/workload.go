package load

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/prompb"

	"github.com/myelindb/myelin/internal/tsdata"
)

// Workload is a set of series and how their values move. Both workloads
// have the metrics the query set of bench/internal/query reads:
// node_cpu_seconds_total (with cpu and mode) and
// node_memory_MemAvailable_bytes, and a job and an instance label on every
// series.
type Workload struct {
	Name   string
	Series []Series
	// Instance is the instance label of the first copy: a value that
	// exists, for queries of one host.
	Instance string
}

// Series is one series of a workload.
type Series struct {
	Labels []prompb.Label // sorted by name; shared, never modified
	gen    generator
}

// Value kinds of synthetic series.
const (
	kindCounter = iota // a counter of decimals at a varying rate
	kindGauge          // a gauge that moves now and then, in pages
	kindConst          // a constant
	kindFloat          // a true float, like a load average
	kindReplay         // recorded values, replayed in a loop
)

// generator makes the values of one series. It is used by one goroutine at
// a time (the series' shard).
type generator struct {
	kind    int
	v, rate float64
	replay  []float64 // kindReplay: shared, never modified
	phase   int       // kindReplay: offset into replay of step 0
}

// next returns the value of scrape step; steps are asked for in order.
func (g *generator) next(rng *rand.Rand, step int) float64 {
	switch g.kind {
	case kindCounter:
		g.v = math.Round((g.v+g.rate*(0.5+rng.Float64()))*100) / 100
	case kindGauge:
		if rng.IntN(4) == 0 {
			g.v += float64(4096 * (rng.IntN(21) - 10))
		}
	case kindFloat:
		g.v = math.Abs(g.v*0.9 + rng.Float64())
	case kindReplay:
		return g.replay[(g.phase+step)%len(g.replay)]
	}
	return g.v
}

// families of a node_exporter, with their label sets per instance and how
// their values move.
var families = []struct {
	name   string
	labels [][]string
	kind   int
}{
	{"node_cpu_seconds_total", cross([]string{"cpu"}, seq(8), []string{"mode"}, []string{"idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"}), kindCounter},
	{"node_memory_MemFree_bytes", nil, kindGauge},
	{"node_memory_MemAvailable_bytes", nil, kindGauge},
	{"node_network_receive_bytes_total", cross([]string{"device"}, []string{"eth0", "lo"}), kindCounter},
	{"node_network_transmit_bytes_total", cross([]string{"device"}, []string{"eth0", "lo"}), kindCounter},
	{"node_disk_io_time_seconds_total", cross([]string{"device"}, []string{"sda", "sdb"}), kindCounter},
	{"node_filesystem_avail_bytes", cross([]string{"mountpoint"}, []string{"/", "/boot", "/var"}), kindGauge},
	{"node_load1", nil, kindFloat},
	{"node_uname_info", nil, kindConst},
	{"up", nil, kindConst},
}

func seq(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}

// cross returns every combination of (name, values) pairs.
func cross(pairs ...[]string) [][]string {
	out := [][]string{nil}
	for i := 0; i+1 < len(pairs); i += 2 {
		var next [][]string
		for _, o := range out {
			for _, v := range pairs[i+1] {
				next = append(next, append(append([]string{}, o...), pairs[i][0], v))
			}
		}
		out = next
	}
	return out
}

// Synthetic returns n node_exporter-like series (80 per host) with
// realistic values: counters of centiseconds and bytes, gauges in pages,
// constants and a true float; seed fixes the values.
func Synthetic(n int, seed uint64) Workload {
	rng := rand.New(rand.NewPCG(seed, 2))
	w := Workload{Name: "synthetic", Instance: "host-0:9100"}
	for inst := 0; len(w.Series) < n; inst++ {
		for _, f := range families {
			lsets := f.labels
			if lsets == nil {
				lsets = [][]string{nil}
			}
			for _, ls := range lsets {
				if len(w.Series) == n {
					break
				}
				l := []prompb.Label{{Name: "__name__", Value: f.name}}
				for i := 0; i < len(ls); i += 2 {
					l = append(l, prompb.Label{Name: ls[i], Value: ls[i+1]})
				}
				l = append(l, prompb.Label{Name: "instance", Value: fmt.Sprintf("host-%d:9100", inst)}, prompb.Label{Name: "job", Value: "node"})
				sortLabels(l)
				w.Series = append(w.Series, Series{Labels: l, gen: generator{
					kind: f.kind,
					v:    math.Round(rng.Float64()*1e4) / 100,
					rate: math.Round(rng.ExpFloat64()*500) / 100,
				}})
			}
		}
	}
	return w
}

// Replay returns n series made from the recorded 15 s series of the shared
// data under dir (its recorded/*_15s.tsv.gz): series i replays recorded
// series i%k as host copy i/k (k recorded series), its instance label
// rewritten to host-<copy>[:port] (added where missing). Values are the
// recorded ones, staleness markers and NaNs included, looped; each copy
// starts at its own offset into the recording so copies differ.
func Replay(dir string, n int) (Workload, error) {
	files, err := filepath.Glob(filepath.Join(dir, "recorded", "*_15s.tsv.gz"))
	if err != nil {
		return Workload{}, err
	}
	sort.Strings(files)
	type source struct {
		lset tsdata.Labels
		port string
		v    []float64
	}
	var src []source
	for _, f := range files {
		err := tsdata.ReadFile(f, func(s *tsdata.Series) error {
			if len(s.V) == 0 {
				return nil
			}
			_, port, _ := strings.Cut(s.Labels.Get("instance"), ":")
			src = append(src, source{lset: s.Labels, port: port, v: s.V})
			return nil
		})
		if err != nil {
			return Workload{}, fmt.Errorf("replay %s: %w", f, err)
		}
	}
	if len(src) == 0 {
		return Workload{}, errors.New("replay: no recorded/*_15s.tsv.gz series under " + dir)
	}
	w := Workload{Name: "replay", Series: make([]Series, n)}
	seen := make(map[string]bool, n)
	for i := range w.Series {
		s, c := &src[i%len(src)], i/len(src)
		inst := "host-" + strconv.Itoa(c)
		if s.port != "" {
			inst += ":" + s.port
		}
		l := make([]prompb.Label, 0, len(s.lset)+1)
		found := false
		for _, x := range s.lset {
			if x.Name == "instance" {
				x.Value, found = inst, true
			}
			l = append(l, prompb.Label{Name: x.Name, Value: x.Value})
		}
		if !found {
			l = append(l, prompb.Label{Name: "instance", Value: inst})
			sortLabels(l)
		}
		if key := labelsKey(l); seen[key] {
			return Workload{}, fmt.Errorf("replay: series %s is not distinct once its instance is rewritten", key)
		} else {
			seen[key] = true
		}
		if c == 0 && w.Instance == "" && s.lset.Get("__name__") == "node_cpu_seconds_total" {
			w.Instance = inst
		}
		w.Series[i] = Series{Labels: l, gen: generator{kind: kindReplay, replay: s.v, phase: c * 7 % len(s.v)}}
	}
	return w, nil
}

func labelsKey(l []prompb.Label) string {
	var b strings.Builder
	for _, x := range l {
		b.WriteString(x.Name)
		b.WriteByte(0)
		b.WriteString(x.Value)
		b.WriteByte(0)
	}
	return b.String()
}

func sortLabels(l []prompb.Label) {
	sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name })
}

// Named returns the named workload of n series: "replay" from the shared
// data under dataDir, "synthetic", or "" for replay if dataDir is set and
// synthetic otherwise.
func Named(name, dataDir string, n int, seed uint64) (Workload, error) {
	if name == "" {
		name = "synthetic"
		if dataDir != "" {
			name = "replay"
		}
	}
	switch name {
	case "synthetic":
		return Synthetic(n, seed), nil
	case "replay":
		if dataDir == "" {
			return Workload{}, errors.New("workload replay: no shared data directory found")
		}
		return Replay(dataDir, n)
	}
	return Workload{}, fmt.Errorf("workload %q: want replay or synthetic", name)
}

// CPUCounters returns instances x len(modes) x cpus series of
// node_cpu_seconds_total{cpu, mode, instance="host-<i>:9100", job="node"}:
// counters of centiseconds at a random rate each, seed fixing the values.
// It is the long-range query benchmark's workload (bench/cmd/longquery),
// one metric so that every series is read by its query.
func CPUCounters(instances, cpus int, modes []string, seed uint64) Workload {
	rng := rand.New(rand.NewPCG(seed, 3))
	w := Workload{Name: "cpu-counters", Instance: "host-0:9100"}
	for inst := range instances {
		for _, ls := range cross([]string{"cpu"}, seq(cpus), []string{"mode"}, modes) {
			l := []prompb.Label{{Name: "__name__", Value: "node_cpu_seconds_total"},
				{Name: ls[0], Value: ls[1]}, {Name: ls[2], Value: ls[3]},
				{Name: "instance", Value: fmt.Sprintf("host-%d:9100", inst)}, {Name: "job", Value: "node"}}
			sortLabels(l)
			w.Series = append(w.Series, Series{Labels: l, gen: generator{
				kind: kindCounter,
				v:    math.Round(rng.Float64()*1e4) / 100,
				rate: math.Round(rng.ExpFloat64()*500) / 100,
			}})
		}
	}
	return w
}
