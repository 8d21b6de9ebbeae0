package load

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/myelindb/myelin/bench/internal/query"
)

// RunConfig is one measured run against one receiver.
type RunConfig struct {
	Name   string // of the receiver, for reports
	Target Target
	// QueryBase is the URL the query API paths go below; empty skips the
	// queries.
	QueryBase string
	PID       int    // of the receiver; 0 skips CPU and memory
	DataDir   string // of the receiver; empty skips disk and settling
	// SkipDirs are subdirectories of DataDir not counted on disk.
	SkipDirs  []string
	Instance  string // for the query set: see query.Set
	QueryRuns int    // runs of every query; zero means 5
	// MaxSettle bounds the wait for the receiver to go quiet after the
	// load. Zero means 2 minutes.
	MaxSettle time.Duration
	// Flush, if set, is called once the load is sent, before settling: a
	// receiver that buffers acknowledged samples in memory for a while
	// (VictoriaMetrics: 5 s) is told to make them searchable and durable
	// now, as it would shortly on its own.
	Flush func(ctx context.Context) error
	// Log, if set, is told about progress.
	Log func(format string, args ...any)
}

// Result is what one run measured. The JSON field names are read by
// bench/cmd/compare's reports.
type Result struct {
	Name     string `json:"name"`
	Series   int    `json:"series"`
	Samples  int64  `json:"samples"`  // accepted
	Requests int    `json:"requests"` // planned
	Retries  int64  `json:"retries"`
	StartMs  int64  `json:"start_ms"` // first scrape
	EndMs    int64  `json:"end_ms"`   // last scrape

	SendSeconds   float64 `json:"send_s"`
	SamplesPerSec float64 `json:"samples_per_s"`
	// ServerCPUSeconds is the receiver's CPU from the first request until
	// it settled, so work it defers past the acknowledgement counts.
	ServerCPUSeconds float64 `json:"server_cpu_s"`
	CPUPerMillion    float64 `json:"server_cpu_s_per_million"`
	// ClientCPUSeconds is this process's CPU over the send: small when the
	// requests were built ahead of time.
	ClientCPUSeconds float64 `json:"client_cpu_s"`
	SettleSeconds    float64 `json:"settle_s"`

	RSSBytes     int64   `json:"rss_bytes"` // VmRSS after settling
	HWMBytes     int64   `json:"hwm_bytes"` // VmHWM: peak RSS
	RSSPerSeries float64 `json:"rss_bytes_per_series"`
	HWMPerSeries float64 `json:"hwm_bytes_per_series"`

	DiskBytes     int64   `json:"disk_bytes"` // data dir after settling
	DiskPerSample float64 `json:"disk_bytes_per_sample"`

	Rate    []RatePoint    `json:"rate"`
	Queries []query.Result `json:"queries"`
}

// Run sends plan p to the receiver, waits for it to settle, measures it
// and runs the query set.
func Run(ctx context.Context, cfg RunConfig, p *Plan, rateEvery time.Duration) (Result, error) {
	logf := cfg.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if cfg.QueryRuns == 0 {
		cfg.QueryRuns = 5
	}
	if cfg.MaxSettle == 0 {
		cfg.MaxSettle = 2 * time.Minute
	}
	res := Result{Name: cfg.Name, Series: p.Series, Requests: p.Requests, StartMs: p.Start, EndMs: p.End}
	var before Proc
	if cfg.PID != 0 {
		var err error
		if before, err = ReadProc(cfg.PID); err != nil {
			return res, err
		}
	}
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	cpu0 := SelfCPU()
	logf("%s: sending %d samples of %d series in %d requests", cfg.Name, p.Samples, p.Series, p.Requests)
	sent, err := Send(ctx, client, cfg.Target, p, rateEvery)
	res.ClientCPUSeconds = SelfCPU() - cpu0
	res.Samples, res.Retries, res.Rate = sent.Samples, sent.Retries, sent.Rate
	res.SendSeconds = sent.Elapsed.Seconds()
	if err != nil {
		return res, fmt.Errorf("send to %s: %w", cfg.Name, err)
	}
	res.SamplesPerSec = float64(sent.Samples) / sent.Elapsed.Seconds()
	logf("%s: sent in %.1f s (%.0f samples/s, %d retries)", cfg.Name, res.SendSeconds, res.SamplesPerSec, res.Retries)
	if cfg.Flush != nil {
		if err := cfg.Flush(ctx); err != nil {
			return res, fmt.Errorf("flush %s: %w", cfg.Name, err)
		}
	}
	if cfg.PID != 0 && cfg.DataDir != "" {
		// Quiet: under 0.05 CPU-s over 5 s (idle housekeeping) and no
		// change on disk. 5 s, longer than the 2-4 s after its last write
		// at which a Myelin node snapshots (raftgroup's snapshot when the
		// writes stop): a shorter window could close before that work,
		// leaving its CPU out and its log bytes and memory in.
		waited, err := Settle(ctx, cfg.PID, cfg.DataDir, 5*time.Second, 0.05, cfg.MaxSettle)
		if err != nil {
			return res, fmt.Errorf("settle %s: %w", cfg.Name, err)
		}
		res.SettleSeconds = waited.Seconds()
		logf("%s: settled after %.0f s", cfg.Name, res.SettleSeconds)
	}
	if cfg.PID != 0 {
		after, err := ReadProc(cfg.PID)
		if err != nil {
			return res, err
		}
		res.ServerCPUSeconds = after.CPUSeconds - before.CPUSeconds
		res.CPUPerMillion = res.ServerCPUSeconds / float64(res.Samples) * 1e6
		res.RSSBytes, res.HWMBytes = after.RSS, after.HWM
		res.RSSPerSeries = float64(after.RSS) / float64(p.Series)
		res.HWMPerSeries = float64(after.HWM) / float64(p.Series)
	}
	if cfg.DataDir != "" {
		n, err := DirBytes(cfg.DataDir, cfg.SkipDirs...)
		if err != nil {
			return res, err
		}
		res.DiskBytes, res.DiskPerSample = n, float64(n)/float64(res.Samples)
	}
	if cfg.QueryBase != "" {
		qc := query.Client{HTTP: client, Base: cfg.QueryBase, Tenant: cfg.Target.Tenant}
		for _, q := range query.Set(cfg.Instance, p.Start, p.End) {
			r := qc.Run(ctx, q, cfg.QueryRuns)
			logf("%s: query %-22s median %7.1f ms  max %7.1f ms  %5d series  %s %s", cfg.Name, r.Name, r.MedianS*1e3, r.MaxS*1e3, r.Series, r.Checksum, r.Err)
			res.Queries = append(res.Queries, r)
		}
	}
	return res, nil
}
