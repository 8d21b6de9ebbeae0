package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/myelindb/myelin/server"
	"github.com/myelindb/myelin/server/tenant"
)

// `myelin import` and `myelin export`: clients of a node's
// /api/v1/import/prometheus and /api/v1/export (docs/design.md "Import and
// export (issue 20 item 2)").

// clientFlags are the flags of the commands that talk to a node.
type clientFlags struct {
	url, tenant, tokenFile string
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", "http://localhost:9009", "The node's base `URL`.")
	fs.StringVar(&c.tenant, "tenant", "", "The `tenant` (X-Scope-OrgID); empty with multitenancy off.")
	fs.StringVar(&c.tokenFile, "token-file", "", "A `file` holding the auth token (sent as Authorization: Bearer), when auth is on.")
}

// request returns a request to path on the node with the tenant and token.
func (c *clientFlags) request(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.url, "/")+path, body)
	if err != nil {
		return nil, err
	}
	if c.tenant != "" {
		req.Header.Set(tenant.Header, c.tenant)
	}
	if c.tokenFile != "" {
		tok, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	return req, nil
}

// parseCommandFlags parses args into fs: errUsage for bad flags, done for
// -h.
func parseCommandFlags(fs *flag.FlagSet, args []string) (done bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, fmt.Errorf("%w: %v", errUsage, err)
	}
	return false, nil
}

// importCommand runs `myelin import`.
func importCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("myelin import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c clientFlags
	c.register(fs)
	format := fs.String("format", "prometheus", "Format of `FILE`: prometheus (text format, ms timestamps) or openmetrics (s timestamps).")
	dir := fs.String("tsdb", "", "Import this Prometheus TSDB `directory` (its blocks and head, read-only) instead of a file.")
	progress := fs.Duration("progress", 2*time.Second, "Print progress every this `interval` (0: never).")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: myelin import [flags] FILE|-\n       myelin import [flags] -tsdb DIR\n\n")
		fs.PrintDefaults()
	}
	if done, err := parseCommandFlags(fs, args); done || err != nil {
		return err
	}
	ct := "text/plain; version=0.0.4"
	switch *format {
	case "prometheus":
	case "openmetrics":
		ct = "application/openmetrics-text; version=1.0.0"
	default:
		fmt.Fprintf(stderr, "unknown -format %q: want prometheus or openmetrics\n", *format)
		return fmt.Errorf("%w: unknown -format %q", errUsage, *format)
	}
	var (
		body  io.Reader
		total int64 = -1 // bytes, for the progress; -1 unknown
		read  atomic.Int64
		done  = make(chan struct{})
	)
	switch {
	case *dir != "" && fs.NArg() == 0:
		if *format != "prometheus" {
			return fmt.Errorf("%w: -tsdb sends the prometheus format; drop -format", errUsage)
		}
		pr, pw := io.Pipe()
		stats := &tsdbStats{}
		written := make(chan struct{})
		go func() {
			defer close(written)
			pw.CloseWithError(writeTSDB(ctx, *dir, pw, stats))
		}()
		// After the answer: the reader closed (an early answer, a 400,
		// leaves the writer blocked otherwise), the writer done.
		defer func() {
			pr.Close()
			<-written
			if stats.stale > 0 || stats.histograms > 0 {
				fmt.Fprintf(stderr, "not sent: %d staleness markers, %d native histogram samples (the text format cannot carry them)\n",
					stats.stale, stats.histograms)
			}
		}()
		body = pr
	case *dir == "" && fs.NArg() == 1:
		name := fs.Arg(0)
		if name == "-" {
			body = os.Stdin
			break
		}
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			total = st.Size()
		}
		body = f
	default:
		fs.Usage()
		return fmt.Errorf("%w: want one FILE, or -tsdb DIR", errUsage)
	}
	body = &countingReader{r: body, n: &read}
	// The progress printer is owned here: stopped by closing done, waited
	// for on stopped before anything else writes to stderr.
	stopped := make(chan struct{})
	if *progress > 0 {
		start := time.Now()
		go func() {
			defer close(stopped)
			tick := time.NewTicker(*progress)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					fmt.Fprintln(stderr, progressLine(read.Load(), total, time.Since(start)))
				}
			}
		}()
	}
	req, err := c.request(ctx, http.MethodPost, "/api/v1/import/prometheus", body)
	if err == nil {
		req.Header.Set("Content-Type", ct)
	}
	var resp *http.Response
	if err == nil {
		resp, err = http.DefaultClient.Do(req)
	}
	close(done)
	if *progress > 0 {
		<-stopped
	}
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("import: read answer: %w", err)
	}
	var res server.ImportResult
	if json.Unmarshal(out, &res) != nil {
		return fmt.Errorf("import: %s: %s", resp.Status, strings.TrimSpace(string(out)))
	}
	fmt.Fprintf(stdout, "%d lines read, %d series (%d samples) written, %d samples refused\n",
		res.Lines, res.SeriesWritten, res.SamplesWritten, res.SamplesRefused)
	for reason, n := range res.Refused {
		fmt.Fprintf(stdout, "  refused %s: %d samples\n", reason, n)
	}
	if res.FirstRefusal != "" {
		fmt.Fprintf(stdout, "  first refusal: %s\n", res.FirstRefusal)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("import: %s: %s", resp.Status, res.Error)
	}
	return nil
}

// progressLine says how far an import is.
func progressLine(read, total int64, took time.Duration) string {
	rate := float64(read) / max(took.Seconds(), 1e-3) / (1 << 20)
	if total > 0 {
		return fmt.Sprintf("%.1f%%: %d of %d bytes sent, %.1f MiB/s", 100*float64(read)/float64(total), read, total, rate)
	}
	return fmt.Sprintf("%d bytes sent, %.1f MiB/s", read, rate)
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// tsdbStats counts what writeTSDB could not send.
type tsdbStats struct{ stale, histograms int }

// writeTSDB writes every float sample of the Prometheus TSDB in dir (its
// blocks and its head's WAL, opened read-only: Prometheus may be running
// on it, its files are not changed) to w in the text format, series
// after series in label order, each series' samples in time order. It
// leaves out staleness markers and native histograms, counted in stats.
func writeTSDB(ctx context.Context, dir string, w io.Writer, stats *tsdbStats) error {
	sandbox, err := os.MkdirTemp("", "myelin-import-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(sandbox)
	db, err := tsdb.OpenDBReadOnly(dir, sandbox, slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("open TSDB %s: %w", dir, err)
	}
	defer db.Close()
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		return fmt.Errorf("query TSDB %s: %w", dir, err)
	}
	defer q.Close()
	bw := bufio.NewWriterSize(w, 1<<20)
	ss := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+"))
	var it chunkenc.Iterator
	var line []byte
	for ss.Next() {
		s := ss.At()
		head := server.AppendSeriesText(nil, s.Labels())
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if vt != chunkenc.ValFloat {
				stats.histograms++
				continue
			}
			t, v := it.At()
			if value.IsStaleNaN(v) {
				stats.stale++
				continue
			}
			line = server.AppendSampleText(line[:0], head, t, v)
			if _, err := bw.Write(line); err != nil {
				return err
			}
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("read series %s: %w", s.Labels(), err)
		}
	}
	if err := ss.Err(); err != nil {
		return fmt.Errorf("read TSDB %s: %w", dir, err)
	}
	return bw.Flush()
}

// exportCommand runs `myelin export`.
func exportCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("myelin export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c clientFlags
	c.register(fs)
	var matches stringList
	fs.Var(&matches, "match", "A series `selector` (match[]); repeat for more. Default: every series.")
	start := fs.String("start", "", "Start `time` (RFC 3339 or Unix seconds); default: the beginning.")
	end := fs.String("end", "", "End `time` (RFC 3339 or Unix seconds); default: now.")
	output := fs.String("o", "-", "Write to this `file` (- is stdout).")
	if done, err := parseCommandFlags(fs, args); done || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if len(matches) == 0 {
		matches = stringList{`{__name__=~".+"}`}
	}
	form := url.Values{"match[]": matches}
	if *start != "" {
		form.Set("start", *start)
	}
	if *end != "" {
		form.Set("end", *end)
	}
	req, err := c.request(ctx, http.MethodPost, "/api/v1/export", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("export: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	out := stdout
	if *output != "-" {
		f, err := os.Create(*output)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	// Copied line by line: a "# ERROR" line is the server's failure after
	// the answer began (server.ExportHandler).
	br := bufio.NewReaderSize(resp.Body, 1<<20)
	bw := bufio.NewWriterSize(out, 1<<20)
	for {
		line, err := br.ReadSlice('\n')
		if strings.HasPrefix(string(line), "# ERROR ") {
			return fmt.Errorf("export: %s", strings.TrimSpace(string(line[len("# ERROR "):])))
		}
		if strings.HasPrefix(string(line), "# SKIPPED ") {
			fmt.Fprintln(stderr, "not exported:", strings.TrimSpace(string(line[len("# SKIPPED "):])))
		}
		for errors.Is(err, bufio.ErrBufferFull) {
			if _, werr := bw.Write(line); werr != nil {
				return werr
			}
			line, err = br.ReadSlice('\n')
		}
		if _, werr := bw.Write(line); werr != nil {
			return werr
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("export: read answer: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if f, ok := out.(*os.File); ok && out != stdout {
		return f.Sync()
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }
