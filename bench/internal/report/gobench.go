package report

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// BenchLine is one result line of `go test -bench`.
type BenchLine struct {
	Name    string             // without the Benchmark prefix and -GOMAXPROCS suffix
	Metrics map[string]float64 // unit -> value, e.g. "ns/op", "samples/s"
}

// ParseGoBench returns the result lines of `go test -bench` output; other
// lines are skipped.
func ParseGoBench(r io.Reader) ([]BenchLine, error) {
	var out []BenchLine
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// Name, iterations, then value-unit pairs.
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		l := BenchLine{Name: name, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			l.Metrics[f[i+1]] = v
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// Pair is one metric of a benchmark measured on both stores.
type Pair struct {
	Name       string // benchmark name with the store element removed
	Unit       string
	Myelin     float64
	Prometheus float64
}

// Pairs matches every benchmark with a "myelin" path element to the one
// with "prometheus" in its place. Units: ns/sample (apply), head-bytes/series,
// disk-bytes/sample and data-bytes/sample (disk), restart-s, and ns/op for
// selects. samples/s is left out where ns/sample or ns/op says the same.
// Older outputs reported Prometheus's blocks as block-bytes/sample; that is
// paired with Myelin's disk-bytes/sample as "disk-bytes/sample vs blocks".
func Pairs(lines []BenchLine) []Pair {
	byName := map[string]BenchLine{}
	for _, l := range lines {
		byName[l.Name] = l
	}
	var out []Pair
	for _, l := range lines {
		el := strings.Split(l.Name, "/")
		idx := -1
		for i, e := range el {
			if e == "myelin" {
				idx = i
			}
		}
		if idx < 0 {
			continue
		}
		el[idx] = "prometheus"
		p, ok := byName[strings.Join(el, "/")]
		if !ok {
			continue
		}
		name := strings.Join(append(el[:idx:idx], el[idx+1:]...), "/")
		add := func(unit string, m, q float64) {
			out = append(out, Pair{Name: name, Unit: unit, Myelin: m, Prometheus: q})
		}
		isSelect := strings.HasPrefix(name, "EngineSelect")
		for _, unit := range []string{"ns/sample", "samples/s", "head-bytes/series", "disk-bytes/sample", "data-bytes/sample", "restart-s", "ns/op"} {
			m, ok1 := l.Metrics[unit]
			q, ok2 := p.Metrics[unit]
			switch {
			case !ok1 || !ok2:
			case unit == "ns/op" && !isSelect:
			case unit == "samples/s" && (isSelect || l.Metrics["ns/sample"] != 0):
			default:
				add(unit, m, q)
			}
		}
		if m, ok := l.Metrics["disk-bytes/sample"]; ok {
			if q, ok := p.Metrics["block-bytes/sample"]; ok {
				add("disk-bytes/sample vs blocks", m, q)
			}
		}
	}
	return out
}

// HigherIsBetter reports whether a larger figure in unit is better.
func HigherIsBetter(unit string) bool { return strings.HasSuffix(unit, "/s") }
