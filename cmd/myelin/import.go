package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
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
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
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
	case "native":
	default:
		fmt.Fprintf(stderr, "unknown -format %q: want prometheus, openmetrics or native\n", *format)
		return fmt.Errorf("%w: unknown -format %q", errUsage, *format)
	}
	var (
		body  io.Reader
		total int64 = -1 // bytes, for the progress; -1 unknown
		read  atomic.Int64
	)
	switch {
	case *dir != "" && fs.NArg() == 0:
		if *format != "prometheus" && *format != "native" {
			return fmt.Errorf("%w: -tsdb sends the native format; drop -format", errUsage)
		}
		p := &pusher{c: &c, sent: &read}
		stop := startProgress(stderr, *progress, &read, total)
		err := importTSDB(ctx, *dir, p)
		stop()
		p.report(stdout)
		return err
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
	if *format == "native" {
		p := &pusher{c: &c}
		stop := startProgress(stderr, *progress, &read, total)
		err := server.ReadNativeFrames(&countingReader{r: body, n: &read}, func(frame []byte) error {
			samples, histograms, err := nativeFrameCounts(frame)
			if err != nil {
				return fmt.Errorf("frame %d: %w", p.frames+1, err)
			}
			return p.push(ctx, frame, samples, histograms)
		})
		stop()
		p.report(stdout)
		return err
	}
	body = &countingReader{r: body, n: &read}
	stop := startProgress(stderr, *progress, &read, total)
	req, err := c.request(ctx, http.MethodPost, "/api/v1/import/prometheus", body)
	if err == nil {
		req.Header.Set("Content-Type", ct)
	}
	var resp *http.Response
	if err == nil {
		resp, err = http.DefaultClient.Do(req)
	}
	stop()
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

// startProgress prints a progress line to stderr every interval (0:
// never) until the returned stop is called; nothing else may write to
// stderr until then.
func startProgress(stderr io.Writer, interval time.Duration, read *atomic.Int64, total int64) (stop func()) {
	if interval <= 0 {
		return func() {}
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	start := time.Now()
	go func() {
		defer close(stopped)
		tick := time.NewTicker(interval)
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
	return func() {
		close(done)
		<-stopped
	}
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

// importTSDB sends every sample of the Prometheus TSDB in dir (its
// blocks and its head's WAL, opened read-only: Prometheus may be running
// on it, its files are not changed) through p in native frames, series
// after series in label order, each series' samples in time order:
// floats, staleness markers and native histograms alike.
func importTSDB(ctx context.Context, dir string, p *pusher) error {
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
	// The writer counts what each frame holds: the counts at one frame's
	// emit less those at the one before.
	var nw *server.NativeWriter
	var samples, histograms int
	nw = server.NewNativeWriter(func(frame []byte) error {
		s, h := nw.Samples-samples, nw.Histograms-histograms
		samples, histograms = nw.Samples, nw.Histograms
		// The frame's length prefix is the stream's, not the body's.
		_, n := binary.Uvarint(frame)
		return p.push(ctx, frame[n:], s, h)
	}, 0)
	ss := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+"))
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		it = s.Iterator(it)
		if err := nw.WriteSeries(s.Labels(), it, math.MinInt64, math.MaxInt64); err != nil {
			return err
		}
	}
	if err := ss.Err(); err != nil {
		return fmt.Errorf("read TSDB %s: %w", dir, err)
	}
	return nw.Flush()
}

// pusher posts native frames, each a remote write 2.0 body, to the node's
// /api/v1/push, and counts what the node wrote and refused. A frame the
// node's limits turn away (429) waits and is sent again, as a remote
// write sender does: an import is throttled, not failed; so is one the
// node could not make durable (5xx), a few times.
type pusher struct {
	c    *clientFlags
	sent *atomic.Int64 // bytes posted, for the progress; nil: not counted

	frames, samples, histograms int // sent
	written, histWritten        int // of them, written
	firstRefusal                string
}

// push posts one frame (a snappy-compressed remote write 2.0 request)
// holding samples float and histograms histogram samples.
func (p *pusher) push(ctx context.Context, body []byte, samples, histograms int) error {
	p.frames++
	p.samples += samples
	p.histograms += histograms
	if p.sent != nil {
		p.sent.Add(int64(len(body)))
	}
	backoff, failures := 250*time.Millisecond, 0
	for {
		req, err := p.c.request(ctx, http.MethodPost, "/api/v1/push", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("import: frame %d: %w", p.frames, err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		switch code := resp.StatusCode; {
		case code == http.StatusNoContent || code == http.StatusOK || code == http.StatusBadRequest:
			w, errW := strconv.Atoi(resp.Header.Get("X-Prometheus-Remote-Write-Samples-Written"))
			hw, errH := strconv.Atoi(resp.Header.Get("X-Prometheus-Remote-Write-Histograms-Written"))
			if errW != nil || errH != nil {
				// Not a node that says what it wrote: a 400 is the whole
				// frame refused, a 2xx the whole frame written.
				w, hw = samples, histograms
				if code == http.StatusBadRequest {
					w, hw = 0, 0
				}
			}
			p.written += w
			p.histWritten += hw
			if code == http.StatusBadRequest && p.firstRefusal == "" {
				p.firstRefusal = strings.TrimSpace(string(msg))
			}
			return nil
		case code == http.StatusTooManyRequests || code >= 500:
			if code >= 500 {
				if failures++; failures > 10 {
					return fmt.Errorf("import: frame %d: %s: %s", p.frames, resp.Status, strings.TrimSpace(string(msg)))
				}
			}
			wait := backoff
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			backoff = min(2*backoff, 10*time.Second)
		default:
			return fmt.Errorf("import: frame %d: %s: %s", p.frames, resp.Status, strings.TrimSpace(string(msg)))
		}
	}
}

// report prints what was sent, written and refused.
func (p *pusher) report(stdout io.Writer) {
	fmt.Fprintf(stdout, "%d frames sent, %d samples and %d histogram samples written, %d samples refused\n",
		p.frames, p.written, p.histWritten, p.samples+p.histograms-p.written-p.histWritten)
	if p.firstRefusal != "" {
		fmt.Fprintf(stdout, "  first refusal: %s\n", p.firstRefusal)
	}
}

// nativeFrameCounts returns how many float and histogram samples a frame
// (a snappy-compressed remote write 2.0 request) holds.
func nativeFrameCounts(body []byte) (samples, histograms int, err error) {
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return 0, 0, fmt.Errorf("snappy: %w", err)
	}
	var req writev2.Request
	if err := req.Unmarshal(raw); err != nil {
		return 0, 0, fmt.Errorf("remote write 2.0 request: %w", err)
	}
	for _, ts := range req.Timeseries {
		samples += len(ts.Samples)
		histograms += len(ts.Histograms)
	}
	return samples, histograms, nil
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
	format := fs.String("format", "prometheus", "Export `format`: prometheus (the text format: floats, no staleness markers) or native (everything, for myelin import -format native).")
	if done, err := parseCommandFlags(fs, args); done || err != nil {
		return err
	}
	path := "/api/v1/export"
	switch *format {
	case "prometheus":
	case "native":
		path = "/api/v1/export/native"
	default:
		return fmt.Errorf("%w: unknown -format %q: want prometheus or native", errUsage, *format)
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
	req, err := c.request(ctx, http.MethodPost, path, strings.NewReader(form.Encode()))
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
	bw := bufio.NewWriterSize(out, 1<<20)
	if *format == "native" {
		// Copied frame by frame: an error trailer is the server's failure
		// after the answer began.
		var err error
		if _, werr := bw.WriteString(server.NativeMagic); werr == nil {
			err = server.ReadNativeFrames(resp.Body, func(body []byte) error {
				var n [binary.MaxVarintLen64]byte
				if _, err := bw.Write(n[:binary.PutUvarint(n[:], uint64(len(body)))]); err != nil {
					return err
				}
				_, err := bw.Write(body)
				return err
			})
		} else {
			err = werr
		}
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		return closeExport(bw, out, stdout)
	}
	// Copied line by line: a "# ERROR" line is the server's failure after
	// the answer began (server.ExportHandler).
	br := bufio.NewReaderSize(resp.Body, 1<<20)
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
	return closeExport(bw, out, stdout)
}

// closeExport flushes an export and syncs its file.
func closeExport(bw *bufio.Writer, out, stdout io.Writer) error {
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
