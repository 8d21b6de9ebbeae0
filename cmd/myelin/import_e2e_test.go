package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestImportPrometheusTSDB imports the TSDB directory of a real Prometheus
// (Debian's 2.42) with `myelin import -tsdb`, then compares Myelin's
// answers with that Prometheus's, restarted on the same directory without
// scrape targets: the raw samples of every series, the series API and the
// e2e queries. Then `myelin export` of everything, imported into a second
// Myelin, gives the same raw samples again.
func TestImportPrometheusTSDB(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with a real Prometheus; skipped with -short")
	}
	bin := findPrometheus(t)
	t.Parallel()
	target := startTarget(t)
	startMs := time.Now().UnixMilli()
	prom := startPrometheus(t, bin, target, "")
	// Until 8 scrapes of each target, flaps included; the polls are
	// also the traffic of the HTTP histogram that a query uses.
	promAPI := apiClient{name: "prometheus", base: "http://" + prom.addr + "/api/v1"}
	deadline := time.Now().Add(60 * time.Second)
	for {
		v, err := promAPI.scalarValue(`min(count_over_time(up[1m])) >= 8`)
		if err == nil && !math.IsNaN(v) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus has not scraped 8 times within 60s (last error: %v)", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	// The window ends a scrape before the stop, so that what Prometheus
	// does at shutdown cannot matter.
	endMs := time.Now().UnixMilli() - 1500
	prom.stop()

	my := startMyelin(t, filepath.Join(t.TempDir(), "data"), "127.0.0.1:0")
	base := "http://" + my.addr
	var stdout, stderr bytes.Buffer
	ctx := context.Background()
	if err := runCommandContext(ctx, []string{"import", "-url", base, "-progress", "100ms", "-tsdb", prom.dataDir}, &stdout, &stderr); err != nil {
		t.Fatalf("myelin import -tsdb: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	t.Logf("myelin import -tsdb:\n%s%s", stdout.String(), stderr.String())
	if !strings.Contains(stdout.String(), " 0 samples refused") {
		t.Errorf("import refused samples:\n%s", stdout.String())
	}

	// The same directory, served by Prometheus again, scraping nothing.
	prom2 := runPrometheus(t, bin, "global:\n  scrape_interval: 1s\n", prom.dataDir, freeAddr(t))
	s := &e2eSetup{prom: prom2, myelin: my}
	promAPI = s.promAPI()
	myAPI := s.myelinAPI()
	compareRaw := func(what string, want, got apiClient) {
		t.Helper()
		w, err := rawSamples(want, startMs, endMs)
		if err != nil {
			t.Fatal(err)
		}
		g, err := rawSamples(got, startMs, endMs)
		if err != nil {
			t.Fatal(err)
		}
		if len(w) < 100 {
			t.Fatalf("%s: only %d series in the window, want a self-scrape's hundreds", what, len(w))
		}
		if d := diffResults(want.name, w, got.name, g, 20, false); d != nil {
			t.Fatalf("%s: raw samples differ:\n%s", what, strings.Join(d, "\n"))
		}
		t.Logf("%s: %d series, %d samples identical", what, len(g), g.samples())
	}
	compareRaw("tsdb import", promAPI, myAPI)
	ws, err := promAPI.series(allSeries, startMs, endMs)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := myAPI.series(allSeries, startMs, endMs)
	if err != nil {
		t.Fatal(err)
	}
	for k := range ws {
		if !gs[k] {
			t.Errorf("series API: %s listed by prometheus, not by myelin", k)
		}
	}
	for k := range gs {
		if !ws[k] {
			t.Errorf("series API: %s listed by myelin, not by prometheus", k)
		}
	}
	s.compareQueries(t, startMs, endMs)

	// Export -> import into another node: the same samples.
	file := filepath.Join(t.TempDir(), "export.txt")
	stdout.Reset()
	stderr.Reset()
	if err := runCommandContext(ctx, []string{"export", "-url", base, "-o", file}, &stdout, &stderr); err != nil {
		t.Fatalf("myelin export: %v\n%s", err, stderr.String())
	}
	my2 := startMyelin(t, filepath.Join(t.TempDir(), "data"), "127.0.0.1:0")
	if err := runCommandContext(ctx, []string{"import", "-url", "http://" + my2.addr, file}, &stdout, &stderr); err != nil {
		t.Fatalf("myelin import: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("export of %d bytes imported: %s", st.Size(), stdout.String())
	compareRaw("export round trip", myAPI, apiClient{name: "myelin2", base: "http://" + my2.addr + "/api/v1"})

	// A bad line: the command fails naming it, the lines before it are in.
	bad := filepath.Join(t.TempDir(), "bad.txt")
	now := time.Now().UnixMilli()
	lines := fmt.Sprintf("bad_import 1 %d\nbad_import 2 %d\nbad_import{ 3 %d\nbad_import 4 %d\n", now-4000, now-3000, now-2000, now-1000)
	if err := os.WriteFile(bad, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	err = runCommandContext(ctx, []string{"import", "-url", "http://" + my2.addr, bad}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "line 3:") {
		t.Fatalf("import of a bad line 3: %v, want a 400 naming line 3", err)
	}
	if !strings.Contains(stdout.String(), "(2 samples) written") {
		t.Fatalf("import of a bad line 3 says:\n%s\nwant the 2 samples before it written", stdout.String())
	}
	got, err := apiClient{name: "myelin2", base: "http://" + my2.addr + "/api/v1"}.query("bad_import[1m]", now)
	if err != nil {
		t.Fatal(err)
	}
	if got.samples() != 2 {
		t.Fatalf("bad_import has %d samples, want the 2 before the bad line", got.samples())
	}
}
