package load

import (
	"compress/gzip"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/myelindb/myelin/internal/tsdata"
)

// decode returns the write requests of every shard of p.
func decode(t *testing.T, p *Plan) [][]prompb.WriteRequest {
	out := make([][]prompb.WriteRequest, len(p.Shards))
	for k, next := range p.Shards {
		for r, ok := next(); ok; r, ok = next() {
			raw, err := snappy.Decode(nil, r.Body)
			require.NoError(t, err)
			var req prompb.WriteRequest
			require.NoError(t, req.Unmarshal(raw))
			require.Len(t, req.Timeseries, r.Samples)
			out[k] = append(out[k], req)
		}
	}
	return out
}

func key(l []prompb.Label) string {
	var b strings.Builder
	for _, x := range l {
		b.WriteString(x.Name + "=" + x.Value + ",")
	}
	return b.String()
}

func TestBuild(t *testing.T) {
	end := time.UnixMilli(1_795_238_700_000 + 12_345)
	for _, tc := range []struct {
		name     string
		series   int
		shards   int
		batch    int
		prebuild bool
	}{
		{"prebuilt", 300, 3, 100, true},
		{"lazy", 300, 3, 100, false},
		{"more shards than series", 2, 8, 2000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Build(Synthetic(tc.series, 1), Options{Hours: 0.1, End: end, Shards: tc.shards, Batch: tc.batch}, tc.prebuild)
			steps := int(0.1 * 3600 / 15)
			require.Equal(t, int64(tc.series*steps), p.Samples)
			require.Equal(t, int64(1_795_238_700_000), p.End, "last scrape on the 15 s grid at or before End")
			require.Equal(t, p.End-int64(steps-1)*15_000, p.Start)
			last := map[string]int64{}
			shardOf := map[string]int{}
			n, reqs := 0, 0
			for k, shard := range decode(t, p) {
				for _, req := range shard {
					reqs++
					require.LessOrEqual(t, len(req.Timeseries), tc.batch)
					for _, ts := range req.Timeseries {
						for i := 1; i < len(ts.Labels); i++ {
							require.Less(t, ts.Labels[i-1].Name, ts.Labels[i].Name, "labels sorted")
						}
						id := key(ts.Labels)
						if s, ok := shardOf[id]; ok {
							require.Equal(t, s, k, "a series stays on one shard")
						}
						shardOf[id] = k
						for _, s := range ts.Samples {
							require.Greater(t, s.Timestamp, last[id], "samples of a series in time order")
							require.GreaterOrEqual(t, s.Timestamp, p.Start)
							require.LessOrEqual(t, s.Timestamp, p.End+5)
							last[id] = s.Timestamp
							n++
						}
					}
				}
			}
			require.Equal(t, int(p.Samples), n)
			require.Equal(t, p.Requests, reqs)
			require.Len(t, last, tc.series)
		})
	}
}

func TestBuildDeterministic(t *testing.T) {
	opts := Options{Hours: 0.05, End: time.UnixMilli(1_795_238_700_000)}
	a := decode(t, Build(Synthetic(100, 7), opts, true))
	b := decode(t, Build(Synthetic(100, 7), opts, false))
	require.Equal(t, a, b, "same seed and end: same requests, built ahead or lazily")
}

func TestSyntheticHasQueriedMetrics(t *testing.T) {
	w := Synthetic(200, 1)
	require.Len(t, w.Series, 200)
	names := map[string]bool{}
	for _, s := range w.Series {
		names[labelValue(s.Labels, "__name__")] = true
		require.NotEmpty(t, labelValue(s.Labels, "instance"))
		require.NotEmpty(t, labelValue(s.Labels, "job"))
	}
	for _, n := range []string{"node_cpu_seconds_total", "node_network_receive_bytes_total", "node_memory_MemAvailable_bytes"} {
		require.True(t, names[n], n)
	}
	require.Equal(t, "host-0:9100", w.Instance)
}

func labelValue(l []prompb.Label, name string) string {
	for _, x := range l {
		if x.Name == name {
			return x.Value
		}
	}
	return ""
}

// writeData writes a tiny shared-data directory with one recorded file.
func writeData(t *testing.T, series []tsdata.Series) string {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "recorded"), 0o755))
	f, err := os.Create(filepath.Join(dir, "recorded", "node_15s.tsv.gz"))
	require.NoError(t, err)
	zw := gzip.NewWriter(f)
	for i := range series {
		require.NoError(t, tsdata.WriteLine(zw, &series[i]))
	}
	require.NoError(t, zw.Close())
	require.NoError(t, f.Close())
	return dir
}

func lbls(kv ...string) tsdata.Labels {
	var ls tsdata.Labels
	for i := 0; i+1 < len(kv); i += 2 {
		ls = append(ls, tsdata.Label{Name: kv[i], Value: kv[i+1]})
	}
	return ls
}

func TestReplay(t *testing.T) {
	stale := math.Float64frombits(value.StaleNaN)
	dir := writeData(t, []tsdata.Series{
		{Labels: lbls("__name__", "node_cpu_seconds_total", "cpu", "0", "instance", "127.0.0.1:19100", "job", "node_15s", "mode", "idle"),
			T: []int64{1000, 16000, 31000}, V: []float64{1, 2, stale}},
		{Labels: lbls("__name__", "up", "job", "rules"), // no instance
			T: []int64{1000, 16000}, V: []float64{1, 0}},
	})
	w, err := Replay(dir, 5)
	require.NoError(t, err)
	require.Len(t, w.Series, 5)
	require.Equal(t, "host-0:19100", w.Instance)
	require.Equal(t, "host-2:19100", labelValue(w.Series[4].Labels, "instance"), "series 4 is copy 2 of source 0")
	require.Equal(t, "host-1", labelValue(w.Series[3].Labels, "instance"), "an instance label is added where missing")
	require.Equal(t, []string{"__name__", "instance", "job"}, []string{w.Series[3].Labels[0].Name, w.Series[3].Labels[1].Name, w.Series[3].Labels[2].Name}, "labels stay sorted")

	// Copy 0 replays from the start, looping; staleness markers keep their bits.
	g := w.Series[0].gen
	var got []uint64
	for st := range 4 {
		got = append(got, math.Float64bits(g.next(nil, st)))
	}
	require.Equal(t, []uint64{math.Float64bits(1), math.Float64bits(2), value.StaleNaN, math.Float64bits(1)}, got)
	// Copy 1 starts 7 samples later: 7 % 3 = 1.
	g = w.Series[2].gen
	require.Equal(t, 2.0, g.next(nil, 0))

	_, err = Replay(t.TempDir(), 5)
	require.ErrorContains(t, err, "no recorded")
}

func TestNamed(t *testing.T) {
	w, err := Named("", "", 10, 1)
	require.NoError(t, err)
	require.Equal(t, "synthetic", w.Name)
	_, err = Named("replay", "", 10, 1)
	require.Error(t, err)
	_, err = Named("zipf", "", 10, 1)
	require.ErrorContains(t, err, `workload "zipf"`)
}

func TestPostRetries(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "t1", r.Header.Get("X-Scope-OrgID"))
		require.Equal(t, "snappy", r.Header.Get("Content-Encoding"))
		switch calls.Add(1) {
		case 1:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case 2:
			http.Error(w, "slow down", http.StatusTooManyRequests)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	retries, err := post(t.Context(), srv.Client(), Target{WriteURL: srv.URL, Tenant: "t1"}, []byte("x"))
	require.NoError(t, err)
	require.Equal(t, 2, retries)
	require.Equal(t, int32(3), calls.Load())

	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad labels", http.StatusBadRequest)
	}))
	defer bad.Close()
	_, err = post(t.Context(), bad.Client(), Target{WriteURL: bad.URL}, []byte("x"))
	require.ErrorContains(t, err, "400 bad labels")
}

func TestSend(t *testing.T) {
	var samples atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		raw, err := snappy.Decode(nil, b)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req prompb.WriteRequest
		if err := req.Unmarshal(raw); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		samples.Add(int64(len(req.Timeseries)))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	p := Build(Synthetic(100, 1), Options{Hours: 0.1, Batch: 50}, true)
	res, err := Send(t.Context(), srv.Client(), Target{WriteURL: srv.URL}, p, time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, p.Samples, res.Samples)
	require.Equal(t, p.Samples, samples.Load())
	require.Zero(t, res.Retries)

	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusBadRequest)
	}))
	defer bad.Close()
	p = Build(Synthetic(100, 1), Options{Hours: 0.1, Batch: 50}, false)
	_, err = Send(t.Context(), bad.Client(), Target{WriteURL: bad.URL}, p, time.Second)
	require.ErrorContains(t, err, "400 no")
}

// TestSendRoundRobin: with several URLs every request goes to one of them
// in turn, and every sample arrives once.
func TestSendRoundRobin(t *testing.T) {
	var hits [3]atomic.Int64
	var srvs []*httptest.Server
	var urls []string
	for i := range hits {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			hits[i].Add(1)
			w.WriteHeader(http.StatusNoContent)
		}))
		defer srv.Close()
		srvs = append(srvs, srv)
		urls = append(urls, srv.URL)
	}
	p := Build(Synthetic(100, 1), Options{Hours: 0.1, Batch: 50, Shards: 3}, true)
	res, err := Send(t.Context(), srvs[0].Client(), Target{WriteURL: "http://unused.invalid", WriteURLs: urls}, p, time.Second)
	require.NoError(t, err)
	require.Equal(t, p.Samples, res.Samples)
	var total int64
	for i := range hits {
		n := hits[i].Load()
		total += n
		// Round-robin over all shards' requests: counts differ by at most one.
		require.InDelta(t, float64(p.Requests)/3, float64(n), 1, "server %d", i)
	}
	require.Equal(t, int64(p.Requests), total)
}

func TestParseProc(t *testing.T) {
	stat := []byte("1234 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0")
	status := []byte("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n")
	p, err := parseProc(stat, status)
	require.NoError(t, err)
	require.Equal(t, Proc{CPUSeconds: 3, RSS: 1 << 20, HWM: 2 << 20}, p)
	_, err = parseProc([]byte("1234 no parens"), nil)
	require.Error(t, err)

	self, err := ReadProc(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, self.RSS)
	require.GreaterOrEqual(t, self.HWM, self.RSS)
}

func TestDirBytes(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "snapshots"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "x"), make([]byte, 10), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a", "b", "y"), make([]byte, 5), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "snapshots", "z"), make([]byte, 100), 0o644))
	n, err := DirBytes(dir)
	require.NoError(t, err)
	require.Equal(t, int64(115), n)
	n, err = DirBytes(dir, "snapshots")
	require.NoError(t, err)
	require.Equal(t, int64(15), n)
}

func TestCPUCounters(t *testing.T) {
	w := CPUCounters(100, 2, []string{"idle", "iowait", "system", "user", "softirq"}, 1)
	require.Len(t, w.Series, 1000)
	seen := map[string]bool{}
	for _, s := range w.Series {
		require.Equal(t, "node_cpu_seconds_total", s.Labels[0].Value)
		require.True(t, sort.SliceIsSorted(s.Labels, func(i, j int) bool { return s.Labels[i].Name < s.Labels[j].Name }))
		seen[labelsKey(s.Labels)] = true
	}
	require.Len(t, seen, 1000, "series are distinct")
	// Counters never go down.
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range w.Series[:10] {
		prev := s.gen.next(rng, 0)
		for st := 1; st < 100; st++ {
			v := s.gen.next(rng, st)
			require.GreaterOrEqual(t, v, prev)
			prev = v
		}
	}
}
