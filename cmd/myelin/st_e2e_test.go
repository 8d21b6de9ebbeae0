package main

import (
	"context"
	"encoding/json"
	"io"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
)

// TestStartTimestampsE2E: a node run with -query.use-start-timestamps
// stores remote write 2.0's start timestamps and its increase, rate,
// irate and resets use them: the answers are Prometheus's engine's on
// Prometheus's storage with start timestamps, before and after the node
// restarts (the starts come back from its store and Raft log).
func TestStartTimestampsE2E(t *testing.T) {
	dir := t.TempDir()
	start := func() (string, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		stderr := newLogWatcher()
		done := make(chan error, 1)
		argv := []string{"-data.dir", dir, "-http.listen-address", "127.0.0.1:0", "-query.use-start-timestamps"}
		goRun(t, cancel, done, func() error { return run(ctx, argv, io.Discard, stderr) })
		addr := stderr.addr(t, done)
		waitReady(t, addr)
		return "http://" + addr, func() {
			cancel()
			select {
			case <-done:
			case <-time.After(time.Minute):
				t.Fatal("the node did not stop")
			}
		}
	}
	base, stop := start()

	// A counter that restarted at 6m30s without its value dropping, and a
	// delta series: one sample a minute for 15 minutes.
	counter := labels.FromStrings("__name__", "c_total", "job", "st")
	delta := labels.FromStrings("__name__", "d_total", "job", "st")
	ref := teststorage.New(t, func(o *tsdb.Options) {
		o.EnableSTStorage = true
		o.XOR2EncodingAllowed = true
		o.FloatChunkEncoding = chunkenc.EncXOR2
	})
	app := ref.AppenderV2(context.Background())
	st := writev2.NewSymbolTable()
	req := writev2.Request{}
	cs := writev2.TimeSeries{LabelsRefs: st.SymbolizeLabels(counter, nil)}
	ds := writev2.TimeSeries{LabelsRefs: st.SymbolizeLabels(delta, nil)}
	t0 := time.Now().Add(-20 * time.Minute).Truncate(time.Minute).UnixMilli()
	for i := int64(1); i <= 15; i++ {
		ts := t0 + i*60_000
		cst := t0 + 1
		if i >= 7 {
			cst = t0 + 390_000
		}
		cs.Samples = append(cs.Samples, writev2.Sample{Value: float64(60 * i), Timestamp: ts, StartTimestamp: cst})
		ds.Samples = append(ds.Samples, writev2.Sample{Value: 60, Timestamp: ts, StartTimestamp: ts - 60_000})
		_, err := app.Append(0, counter, cst, ts, float64(60*i), nil, nil, storage.AppendV2Options{})
		require.NoError(t, err)
		_, err = app.Append(0, delta, ts-60_000, ts, 60, nil, nil, storage.AppendV2Options{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	req.Timeseries = []writev2.TimeSeries{cs, ds}
	req.Symbols = st.Symbols()
	body, err := req.Marshal()
	require.NoError(t, err)
	r := rw2Post(t, base+"/api/v1/push", "t", rw2ContentType, "snappy", snappy.Encode(nil, body))
	require.Equal(t, 204, r.code, r.body)

	eng := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery) // UseStartTimestamps
	at := time.UnixMilli(t0 + 7*60_000)                                                // just after the restart
	check := func(base string) {
		for _, q := range []string{`increase(c_total[5m])`, `rate(c_total[5m])`, `irate(c_total[5m])`, `resets(c_total[5m])`, `increase(d_total[5m])`} {
			qry, err := eng.NewInstantQuery(context.Background(), ref, nil, q, at)
			require.NoError(t, err)
			res := qry.Exec(context.Background())
			require.NoError(t, res.Err)
			vec, err := res.Vector()
			require.NoError(t, err)
			require.Len(t, vec, 1)
			code, out := do(t, "GET", base+"/api/v1/query?"+url.Values{"query": {q}, "time": {strconv.FormatInt(at.Unix(), 10)}}.Encode(), "t", nil)
			require.Equal(t, 200, code, out)
			var resp struct {
				Data struct {
					Result []struct {
						Value [2]any `json:"value"`
					} `json:"result"`
				} `json:"data"`
			}
			require.NoError(t, json.Unmarshal([]byte(out), &resp))
			require.Len(t, resp.Data.Result, 1, out)
			got, err := strconv.ParseFloat(resp.Data.Result[0].Value[1].(string), 64)
			require.NoError(t, err)
			require.InDelta(t, vec[0].F, got, 1e-9, q)
			qry.Close()
		}
	}
	check(base)
	stop()
	base, _ = start()
	check(base)
}
