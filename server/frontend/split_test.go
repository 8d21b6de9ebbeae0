package frontend

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/require"
)

func TestSplitByInterval(t *testing.T) {
	const h = int64(time.Hour / time.Millisecond)
	const d = 24 * h
	for _, tc := range []struct {
		name                       string
		start, end, step, interval int64
		want                       []span
	}{
		{"no split", 0, 3 * d, 60_000, 0, []span{{0, 3 * d}}},
		{"end off the grid", 0, 3*d + 1, 60_000, 0, []span{{0, 3 * d}}},
		{"within a day", h, 2 * h, 60_000, d, []span{{h, 2 * h}}},
		{"day aligned", 0, 2 * d, h, d, []span{{0, d - h}, {d, 2*d - h}, {2 * d, 2 * d}}},
		{"unaligned start", h + 1, d + h, h, d, []span{{h + 1, 23*h + 1}, {d + 1, d + 1}}},
		{"step over the interval", 0, 3 * d, 2 * d, d, []span{{0, 0}, {2 * d, 2 * d}}},
		{"single step", 5, 5, 10, d, []span{{5, 5}}},
		{"before 1970", -d - h, h, 12 * h, d, []span{{-d - h, -d - h}, {-13 * h, -h}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := splitByInterval(tc.start, tc.end, tc.step, tc.interval)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestSplitCoversEverySteps: the pieces hold every step of the query once,
// each piece within one interval, for random queries.
func TestSplitCoversEveryStep(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	for range 2000 {
		interval := 1 + rng.Int64N(1000)
		step := 1 + rng.Int64N(300)
		start := rng.Int64N(100_000) - 50_000
		end := start + rng.Int64N(5000)
		var got []int64
		for _, s := range splitByInterval(start, end, step, interval) {
			require.Equal(t, floorDiv(s.start, interval), floorDiv(s.end, interval), "piece %v crosses an interval", s)
			for ts := s.start; ts <= s.end; ts += step {
				got = append(got, ts)
			}
		}
		var want []int64
		for ts := start; ts <= end; ts += step {
			want = append(want, ts)
		}
		require.Equal(t, want, got, "start %d end %d step %d interval %d", start, end, step, interval)
	}
}

// TestEncodeLikePrometheus: results the frontend writes are byte for byte
// what Prometheus's JSON codec writes for the same values.
func TestEncodeLikePrometheus(t *testing.T) {
	values := []float64{0, math.Copysign(0, -1), 1, -1.5, 0.1, 1e-7, 1e-6, 123456789012345678, 1e21, 1e22, -3e-9,
		math.Inf(1), math.Inf(-1), math.NaN(), math.MaxFloat64, math.SmallestNonzeroFloat64, 1.0 / 3}
	times := []int64{0, 1, 10, 100, 999, 1000, 1001, -1, -1500, 1700000000123, 1700000000000}
	m := promql.Matrix{}
	for i, name := range []string{"a", "b<&>", "c\"\\\u2028é"} {
		s := promql.Series{Metric: labels.FromStrings("__name__", "m", "l", name, "x", fmt.Sprint(i))}
		for j, ts := range times {
			s.Floats = append(s.Floats, promql.FPoint{T: ts + int64(j)*3_600_000, F: values[(i+j)%len(values)]})
		}
		m = append(m, s)
	}
	for _, tc := range []struct {
		name   string
		result parser.Value
	}{
		{"matrix", m},
		{"empty matrix", promql.Matrix{}},
		{"vector", promql.Vector{{Metric: labels.FromStrings("a", "b"), T: 1500, F: 2}, {Metric: labels.EmptyLabels(), T: -1, F: math.NaN()}}},
		{"scalar", promql.Scalar{T: 1234, V: 1e-9}},
		{"string", promql.String{T: 1234, V: "x<y"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, annotated := range []bool{false, true} {
				resp := &v1.Response{Status: "success", Data: &v1.QueryData{ResultType: tc.result.Type(), Result: tc.result}}
				if annotated {
					resp.Warnings = []string{"w <1>", "w2"}
					resp.Infos = []string{"i & 1"}
				}
				want, err := v1.JSONCodec{}.Encode(resp)
				require.NoError(t, err)
				res, err := decodeResult(want, nil)
				require.NoError(t, err)
				require.Equal(t, string(want), string(res.encode(nil, false)))
			}
		})
	}
}

// TestSplitEqualsUnsplit: range queries through the frontend, split into
// pieces of one hour, answer byte for byte what the API answers for the
// whole query.
func TestSplitEqualsUnsplit(t *testing.T) {
	api := newFakeAPI(t)
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	for i, job := range []string{"a", "b", "c"} {
		for inst := range 3 {
			l := labels.FromStrings("__name__", "http_requests_total", "job", job, "instance", fmt.Sprint(inst))
			var ts []int64
			var vs []float64
			for k := range 6 * 60 * 4 { // 6h at 15 s
				if job == "c" && k > 200 && k < 400 {
					continue // a gap: staleness and absent
				}
				ts = append(ts, base.Add(time.Duration(k)*15*time.Second).UnixMilli())
				vs = append(vs, float64(k*(i+1)+inst))
			}
			api.add(t, "t1", l, ts, vs)
		}
	}
	f := newTestFrontend(t, api, Options{Defaults: Limits{SplitInterval: time.Hour}})
	start, end := base.Add(-30*time.Minute), base.Add(6*time.Hour+30*time.Minute)
	for _, q := range []string{
		`http_requests_total`,
		`rate(http_requests_total[5m])`,
		`sum by (job) (rate(http_requests_total[5m]))`,
		`http_requests_total @ start()`,
		`http_requests_total @ end() - http_requests_total`,
		`max_over_time(http_requests_total[10m:1m] @ end())`,
		`http_requests_total offset 1h`,
		`time()`,
		`absent(http_requests_total{job="c"})`,
		`count_over_time(http_requests_total[1h])`,
		`timestamp(http_requests_total)`,
		`label_replace(http_requests_total, "x", "$1", "job", "(.*)")`,
		`1`,
		`vector(1)`,
		`http_requests_total / ignoring(instance) group_left sum by (job) (http_requests_total)`,
		`topk(2, http_requests_total)`,
		`nonexistent`,
	} {
		for _, step := range []time.Duration{15 * time.Second, 7 * time.Minute, 2 * time.Hour} {
			t.Run(fmt.Sprintf("%s/%v", q, step), func(t *testing.T) {
				form := rangeForm(q, start, end, step)
				wantCode, want := get(t, api, "/api/v1/query_range", "t1", form)
				code, got := get(t, f, "/api/v1/query_range", "t1", form)
				require.Equal(t, wantCode, code, got)
				require.Equal(t, want, got)
			})
		}
	}
}
