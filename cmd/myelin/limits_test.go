package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/prompb"

	"github.com/myelindb/myelin/server/distributor"
	"github.com/myelindb/myelin/server/limits"
)

// seriesBody is a remote-write request of series {__name__=name, i=k}
// for k in [from, to), one sample each at tsMillis.
func seriesBody(t testing.TB, name string, from, to int, tsMillis int64) []byte {
	t.Helper()
	req := prompb.WriteRequest{}
	for k := from; k < to; k++ {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: name}, {Name: "i", Value: strconv.Itoa(k)}},
			Samples: []prompb.Sample{{Timestamp: tsMillis, Value: float64(k)}},
		})
	}
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

// metricValue returns the value of the first line of /metrics at base
// that starts with series (name and labels as exposed), or -1 if none.
func metricValue(t testing.TB, base, series string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	return -1
}

func TestLimitsFlags(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"negative series limit", []string{"-ingester.max-global-series-per-user", "-1"},
			"max_global_series_per_user (-ingester.max-global-series-per-user): -1 is negative"},
		{"rate without burst", []string{"-distributor.ingestion-rate-limit", "100", "-distributor.ingestion-burst-size", "0"},
			"ingestion_burst_size (-distributor.ingestion-burst-size): 0: want at least 1 with an ingestion rate"},
		{"bad duration", []string{"-querier.max-query-lookback", "soon"}, `invalid value "soon" for flag -querier.max-query-lookback`},
		{"no reload period", []string{"-runtime-config.reload-period", "0s"}, "-runtime-config.reload-period 0s: want a positive duration"},
		{"no GC target", []string{"-runtime.gogc", "0"}, "-runtime.gogc 0: want more than 0"},
		{"OTel strategy", []string{"-distributor.otel-translation-strategy", "Bogus"},
			`otel_translation_strategy (-distributor.otel-translation-strategy): unknown strategy "Bogus"`},
		{"OTel strategy keeps UTF-8 names", []string{"-validation.legacy-names", "-distributor.otel-translation-strategy", "NoUTF8EscapingWithSuffixes"},
			"-distributor.otel-translation-strategy NoUTF8EscapingWithSuffixes keeps UTF-8 names, which -validation.legacy-names refuses"},
		{"OTel strategy and suffixes disagree", []string{"-distributor.otel-translation-strategy", "NoTranslation", "-distributor.otel-metric-suffixes-enabled"},
			"otel_translation_strategy (-distributor.otel-translation-strategy): NoTranslation disagrees with otel_metric_suffixes_enabled: true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), tc.args, io.Discard, &stderr)
			if !errors.Is(err, errUsage) || !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Fatalf("run(%q) = %v, stderr %q; want a usage error with %q", tc.args, err, stderr.String(), tc.wantStderr)
			}
		})
	}
	// Prometheus durations, as Mimir's limits take them.
	cfg, _, err := parseFlags([]string{"-querier.max-query-lookback", "30d", "-store.max-query-length", "2w"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.defaultLimits(); time.Duration(d.MaxQueryLookback) != 30*24*time.Hour || time.Duration(d.MaxQueryLength) != 14*24*time.Hour {
		t.Fatalf("durations %v, %v", d.MaxQueryLookback, d.MaxQueryLength)
	}
	// The OTel flags are the tenants' defaults; the suffixes flag alone
	// switches the default strategy's suffixes, as an override does.
	for _, tc := range []struct {
		args []string
		want limits.Limits
	}{
		{nil, limits.Limits{OTelTranslationStrategy: otlptranslator.UnderscoreEscapingWithSuffixes, OTelMetricSuffixesEnabled: true}},
		{[]string{"-distributor.otel-metric-suffixes-enabled=false"}, limits.Limits{OTelTranslationStrategy: otlptranslator.UnderscoreEscapingWithoutSuffixes}},
		{[]string{"-distributor.otel-translation-strategy=NoTranslation"}, limits.Limits{OTelTranslationStrategy: otlptranslator.NoTranslation}},
		{[]string{"-distributor.otel-promote-resource-attributes", "a, b", "-distributor.otel-convert-histograms-to-nhcb",
			"-distributor.otel-native-delta-ingestion", "-distributor.otel-keep-identifying-resource-attributes", "-distributor.otel-promote-scope-metadata"},
			limits.Limits{OTelTranslationStrategy: otlptranslator.UnderscoreEscapingWithSuffixes, OTelMetricSuffixesEnabled: true,
				PromoteOTelResourceAttributes: limits.CSV{"a", "b"}, OTelConvertHistogramsToNHCB: true, OTelNativeDeltaIngestion: true,
				OTelKeepIdentifyingResourceAttributes: true, OTelPromoteScopeMetadata: true}},
		{[]string{"-distributor.promote-otel-resource-attributes", "c"}, limits.Limits{OTelTranslationStrategy: otlptranslator.UnderscoreEscapingWithSuffixes,
			OTelMetricSuffixesEnabled: true, PromoteOTelResourceAttributes: limits.CSV{"c"}}},
	} {
		cfg, _, err := parseFlags(tc.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		d := cfg.defaultLimits()
		got := limits.Limits{OTelTranslationStrategy: d.OTelTranslationStrategy, OTelMetricSuffixesEnabled: d.OTelMetricSuffixesEnabled,
			PromoteOTelResourceAttributes: d.PromoteOTelResourceAttributes, OTelConvertHistogramsToNHCB: d.OTelConvertHistogramsToNHCB,
			OTelNativeDeltaIngestion: d.OTelNativeDeltaIngestion, OTelKeepIdentifyingResourceAttributes: d.OTelKeepIdentifyingResourceAttributes,
			OTelPromoteScopeMetadata: d.OTelPromoteScopeMetadata}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: OTel defaults %+v, want %+v", tc.args, got, tc.want)
		}
	}
}

// TestFrontendLimits: the query frontend's per-tenant settings come from
// the -query-frontend.* flags, and a tenant's runtime-config overrides
// replace them for that tenant only.
func TestFrontendLimits(t *testing.T) {
	cfg, _, err := parseFlags([]string{"-query-frontend.results-cache-ttl", "30m", "-query-frontend.max-queriers-per-tenant", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o, err := limits.NewOverrides(cfg.defaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	c, err := limits.ParseConfig([]byte("overrides:\n  a:\n    results_cache_ttl: 5m\n    query_sharding_total_shards: 4\n    query_sharding_max_sharded_queries: 32\n    query_sharding_target_series_per_shard: 5000\n    query_sharding_target_samples_per_shard: 7000\n"+
		"  late:\n    out_of_order_time_window: 2h\n  late-short:\n    out_of_order_time_window: 1m\n"), cfg.defaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	o.Set(c)
	get := frontendLimits(cfg.frontend.limits, o)
	if l := get("b"); l != cfg.frontend.limits {
		t.Errorf("tenant without overrides: %+v, want the flags' %+v", l, cfg.frontend.limits)
	}
	want := cfg.frontend.limits
	want.ResultsCacheTTL, want.TotalShards, want.MaxShardedQueries = 5*time.Minute, 4, 32
	want.TargetSeriesPerShard, want.TargetSamplesPerShard = 5000, 7000
	if l := get("a"); l != want {
		t.Errorf("tenant a: %+v, want %+v", l, want)
	}
	// An out-of-order window longer than the cache freshness is the
	// freshness: results it may still change are not cached.
	if l := get("late"); l.MaxCacheFreshness != 2*time.Hour {
		t.Errorf("tenant with a 2h out-of-order window: max cache freshness %v, want 2h", l.MaxCacheFreshness)
	}
	if l := get("late-short"); l != cfg.frontend.limits {
		t.Errorf("tenant with a 1m out-of-order window: %+v, want the flags' %+v", l, cfg.frontend.limits)
	}
	if want.MaxQueriersPerTenant != 3 || want.SplitInterval != 24*time.Hour {
		t.Errorf("flags not applied: %+v", want)
	}
}

// TestRuntimeConfigBadAtStart: a node does not start with a runtime
// config it cannot load, and says which limit of which tenant on which
// line is wrong.
func TestRuntimeConfigBadAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runtime.yaml")
	if err := os.WriteFile(path, []byte("overrides:\n  team-a:\n    max_global_series_per_usr: 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"-data.dir", t.TempDir(), "-http.listen-address", "127.0.0.1:0", "-runtime-config.file", path}, io.Discard, io.Discard)
	want := fmt.Sprintf(`runtime config %s: tenant "team-a" (line 2): line 3: unknown limit "max_global_series_per_usr"`, path)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("run = %v, want an error containing %q", err, want)
	}
	if err := run(context.Background(), []string{"-data.dir", t.TempDir(), "-http.listen-address", "127.0.0.1:0", "-runtime-config.file", path + ".missing"},
		io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "read runtime config") {
		t.Fatalf("missing file: %v", err)
	}
}

// TestRuntimeConfigReload: a node follows its runtime config file
// without a restart; a bad file keeps the last good config in force and
// says why in the log, on /metrics and on /runtime_config.
func TestRuntimeConfigReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runtime.yaml")
	writeConfig := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("overrides:\n  capped:\n    max_global_series_per_user: 3\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := newLogWatcher()
	done := make(chan error, 1)
	argv := []string{"-data.dir", t.TempDir(), "-http.listen-address", "127.0.0.1:0",
		"-runtime-config.file", path, "-runtime-config.reload-period", "50ms"}
	goRun(t, cancel, done, func() error { return run(ctx, argv, io.Discard, stderr) })
	addr := stderr.addr(t, done)
	waitReady(t, addr)
	base := "http://" + addr
	ts := time.Now().UnixMilli()
	push := func(from, to int) (int, string) {
		ts++
		return do(t, "POST", base+"/api/v1/push", "capped", seriesBody(t, "m", from, to, ts))
	}
	code, body := push(0, 5)
	if code != 400 || !strings.Contains(body, "per-user series limit of 3 exceeded (err-mimir-max-series-per-user)") || !strings.Contains(body, `This is for series {__name__="m", i="3"}`) {
		t.Fatalf("5 series over a limit of 3: %d %s", code, body)
	}
	// Another tenant has the defaults: no limit.
	if code, body := do(t, "POST", base+"/api/v1/push", "other", seriesBody(t, "m", 0, 50, ts)); code != 204 {
		t.Fatalf("other tenant: %d %s", code, body)
	}
	_, rc := do(t, "GET", base+"/runtime_config?mode=diff", "", nil)
	if !strings.Contains(rc, "overrides:\n  capped:\n    max_global_series_per_user: 3\n") {
		t.Fatalf("/runtime_config?mode=diff:\n%s", rc)
	}
	// A raised limit takes effect without a restart.
	writeConfig("overrides:\n  capped:\n    max_global_series_per_user: 6\n")
	waitFor(t, 10*time.Second, "the raised limit", func() bool {
		code, _ := push(0, 6)
		return code == 204
	})
	if code, body := push(0, 7); code != 400 || !strings.Contains(body, "per-user series limit of 6 exceeded") {
		t.Fatalf("7 series over a limit of 6: %d %s", code, body)
	}
	if v := metricValue(t, base, `myelin_limits_overrides{limit_name="max_global_series_per_user",tenant="capped"}`); v != 6 {
		t.Fatalf("myelin_limits_overrides = %v, want 6", v)
	}
	// A bad file: the last good config stays, and the node says why.
	writeConfig("overrides:\n  capped:\n    max_global_series_per_user: 100\n    max_query_lookback: soon\n")
	waitFor(t, 10*time.Second, "the failed reload on /metrics", func() bool {
		return metricValue(t, base, "myelin_runtime_config_last_reload_successful") == 0
	})
	if v := metricValue(t, base, `myelin_runtime_config_reloads_total{result="invalid"}`); v != 1 {
		t.Fatalf("invalid reloads %v, want 1", v)
	}
	log := stderr.String()
	if !strings.Contains(log, "runtime config not loaded; the last good one stays in force") || !strings.Contains(log, `not a valid duration string: \"soon\"`) {
		t.Fatalf("the log does not say why:\n%s", log)
	}
	_, rc = do(t, "GET", base+"/runtime_config", "", nil)
	if !strings.Contains(rc, "# the last reload failed; this config stays in force until the file loads:") ||
		!strings.Contains(rc, `not a valid duration string: "soon"`) || !strings.Contains(rc, "max_global_series_per_user: 6\n") {
		t.Fatalf("/runtime_config after a bad file:\n%s", rc)
	}
	if code, _ := push(0, 7); code != 400 {
		t.Fatalf("the bad file's limit was applied: %d", code)
	}
	// Fixed, it loads.
	writeConfig("overrides:\n  capped:\n    max_global_series_per_user: 100\n")
	waitFor(t, 10*time.Second, "the fixed file", func() bool {
		return metricValue(t, base, "myelin_runtime_config_last_reload_successful") == 1
	})
	if code, body := push(0, 7); code != 204 {
		t.Fatalf("after the fix: %d %s", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// clusterPush posts body for tenant to the node at addr and returns the
// status and body (0 for a connection error).
func clusterPush(addr, tenant string, body []byte) (int, string) {
	req, err := http.NewRequest("POST", "http://"+addr+"/api/v1/push", bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := clusterHTTP.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var writtenRE = regexp.MustCompile(`(\d+) series \((\d+) samples\) were written`)

// TestClusterLimits: on a three-node cluster (three groups of three
// replicas), with writes through every node,
//   - a tenant's global series limit admits exactly the groups' shares
//     with their stated slack (distributor.GroupLimit), identically on
//     every replica; each refused series gets a 400 naming it and the
//     limit; the admitted series keep being written;
//   - a tenant over its ingestion rate gets 429 while another tenant on
//     the same nodes writes without a refusal;
//   - a raised limit in the runtime config applies on every node without
//     a restart;
//   - Mimir's cardinality API counts the tenant's series over the whole
//     cluster, through any node.
func TestClusterLimits(t *testing.T) {
	const limit = 3000
	path := filepath.Join(t.TempDir(), "runtime.yaml")
	writeConfig := func(capped int) {
		t.Helper()
		cfg := fmt.Sprintf(`overrides:
  capped:
    max_global_series_per_user: %d
  slow:
    ingestion_rate: 3000
    ingestion_burst_size: 1000
`, capped)
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(limit)
	c := newCluster(t, 3, false, "-auth.multitenancy-enabled=true", "-runtime-config.file", path, "-runtime-config.reload-period", "100ms")
	c.startAll()
	nodes := c.nodes

	// Series: 4,500 new series, 100 a request, through the nodes in
	// turn; every group gets more than its share of the limit.
	ts := time.Now().UnixMilli()
	written, refusedReqs := 0, 0
	for k := 0; k < 45; k++ {
		addr := nodes[k%3].http
		body := seriesBody(t, "c", k*100, (k+1)*100, ts)
		var code int
		var msg string
		for attempt := 0; ; attempt++ {
			if code, msg = clusterPush(addr, "capped", body); code/100 != 5 && code != 0 || attempt == 20 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		switch code {
		case 204:
			written += 100
		case 400:
			refusedReqs++
			if !strings.Contains(msg, fmt.Sprintf("per-user series limit of %d exceeded (err-mimir-max-series-per-user)", limit)) ||
				!strings.Contains(msg, `This is for series {__name__="c", i="`) {
				t.Fatalf("refusal through node %s: %s", nodes[k%3].id, msg)
			}
			m := writtenRE.FindStringSubmatch(msg)
			if m == nil {
				t.Fatalf("refusal without a count of the written series: %s", msg)
			}
			n, _ := strconv.Atoi(m[1])
			written += n
		default:
			t.Fatalf("push through node %s: %d %s", nodes[k%3].id, code, msg)
		}
	}
	perGroup := distributor.GroupLimit(limit, 1.0/3)
	t.Logf("limit %d: %d series admitted of 4,500 (%d requests refused in part); each group admits %d, so at most %d (slack %.1f%%)",
		limit, written, refusedReqs, perGroup, 3*perGroup, 100*float64(3*perGroup-limit)/limit)
	// Shares are a third to a few hashes in 2^64: each group admits
	// GroupLimit, give or take the rounding.
	if written < 3*perGroup-3 || written > 3*perGroup {
		t.Fatalf("%d series admitted, want %d (3 groups x GroupLimit(%d, 1/3))", written, 3*perGroup, limit)
	}
	// The query API agrees, through every node.
	for _, n := range nodes {
		api := apiClient{name: "node " + n.id, base: "http://" + n.http + "/api/v1", tenant: "capped"}
		v, err := api.scalarValue("count(c)")
		if err != nil || int(v) != written {
			t.Fatalf("count(c) through node %s = %v, %v; want %d", n.id, v, err, written)
		}
	}
	// The admitted series keep being written, the others stay refused.
	ts += 1000
	again := 0
	for k := 0; k < 45; k++ {
		code, msg := clusterPush(nodes[(k+1)%3].http, "capped", seriesBody(t, "c", k*100, (k+1)*100, ts))
		switch {
		case code == 204:
			again += 100
		case code == 400:
			m := writtenRE.FindStringSubmatch(msg)
			if m == nil {
				t.Fatalf("second round: %s", msg)
			}
			n, _ := strconv.Atoi(m[1])
			again += n
		default:
			t.Fatalf("second round: %d %s", code, msg)
		}
	}
	if again != written {
		t.Fatalf("second round wrote %d series, want the %d admitted", again, written)
	}
	// Every replica decided alike.
	st := c.converge(nodes)
	t.Logf("converged: %d groups, %d samples", st.groups, st.samples)
	// Mimir's cardinality API counts the tenant over the whole cluster,
	// through any node.
	for _, n := range nodes {
		req, err := http.NewRequest("GET", "http://"+n.http+"/prometheus/api/v1/cardinality/label_values?label_names[]=__name__", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Scope-OrgID", "capped")
		resp, err := clusterHTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var lv struct {
			SeriesCountTotal int `json:"series_count_total"`
			Labels           []struct {
				Cardinality []struct {
					LabelValue  string `json:"label_value"`
					SeriesCount int    `json:"series_count"`
				} `json:"cardinality"`
			} `json:"labels"`
		}
		err = json.NewDecoder(resp.Body).Decode(&lv)
		resp.Body.Close()
		if err != nil || lv.SeriesCountTotal != written || len(lv.Labels) != 1 || len(lv.Labels[0].Cardinality) != 1 ||
			lv.Labels[0].Cardinality[0].LabelValue != "c" || lv.Labels[0].Cardinality[0].SeriesCount != written {
			t.Fatalf("cardinality through node %s: %+v, %v; want %d series of c", n.id, lv, err, written)
		}
	}
	// /metrics: the series of the groups each node leads, summed over
	// the nodes, are the tenant's; its limit is there too.
	waitFor(t, 10*time.Second, "myelin_tenant_series summed over the nodes", func() bool {
		sum := 0.0
		for _, n := range nodes {
			sum += max(metricValue(t, "http://"+n.http, `myelin_tenant_series{tenant="capped"}`), 0)
		}
		return int(sum) == written
	})
	if v := metricValue(t, "http://"+nodes[0].http, `myelin_tenant_limits{limit_name="max_global_series_per_user",tenant="capped"}`); v != limit {
		t.Fatalf("myelin_tenant_limits = %v", v)
	}

	// Rate: "slow" (3,000 samples/s for the cluster, burst 1,000 per
	// node) and "fast" (no limit) write 1,000 samples a request through
	// every node for 3 s; before, fast writes alone for 1.5 s.
	var slowOK, slow429, fastOK, fastBad atomic.Int64
	var wg sync.WaitGroup
	var deadline time.Time
	// Each sender writes series of its own at timestamps of its own, one
	// request at a time: nothing is out of order.
	var clock atomic.Int64
	clock.Store(time.Now().UnixMilli())
	sender := func(tenant string, offset int, ok, refused *atomic.Int64) {
		defer wg.Done()
		for k := 0; time.Now().Before(deadline); k++ {
			body := seriesBody(t, tenant, offset*1000, offset*1000+1000, clock.Add(1))
			code, msg := clusterPush(nodes[(k+offset)%3].http, tenant, body)
			switch code {
			case 204:
				ok.Add(1000)
			case 429:
				refused.Add(1)
				if !strings.Contains(msg, "the request has been rejected because the tenant exceeded the ingestion rate limit, set to 3000 items/s with a maximum allowed burst of 1000") ||
					!strings.Contains(msg, "err-mimir-tenant-max-ingestion-rate") {
					t.Errorf("429 for %s: %s", tenant, msg)
				}
				time.Sleep(20 * time.Millisecond)
			default:
				if tenant == "fast" {
					fastBad.Add(1)
				}
				t.Logf("%s: %d %s", tenant, code, msg)
			}
		}
	}
	deadline = time.Now().Add(1500 * time.Millisecond)
	start := time.Now()
	wg.Add(1)
	go sender("fast", 2, &fastOK, &fastBad)
	wg.Wait()
	alone := float64(fastOK.Load()) / time.Since(start).Seconds()
	fastOK.Store(0)
	const period = 3 * time.Second
	deadline = time.Now().Add(period)
	start = time.Now()
	wg.Add(3)
	go sender("slow", 0, &slowOK, &slow429)
	go sender("slow", 1, &slowOK, &slow429)
	go sender("fast", 2, &fastOK, &fastBad)
	wg.Wait()
	elapsed := time.Since(start)
	beside := float64(fastOK.Load()) / elapsed.Seconds()
	t.Logf("in %v: slow wrote %d samples (%.0f/s) and got %d 429s; fast wrote %d samples (%.0f/s, %.2fx its %.0f/s alone), %d refusals",
		elapsed.Round(time.Millisecond), slowOK.Load(), float64(slowOK.Load())/elapsed.Seconds(), slow429.Load(),
		fastOK.Load(), beside, beside/alone, alone, fastBad.Load())
	if slow429.Load() == 0 {
		t.Fatal("slow never got a 429")
	}
	// At most the rate over the period plus each node's burst.
	if maxSlow := int64(3000*elapsed.Seconds()) + 3*1000; slowOK.Load() > maxSlow {
		t.Fatalf("slow wrote %d samples in %v, more than rate x time + bursts = %d", slowOK.Load(), elapsed, maxSlow)
	}
	// Full speed: no refusal, and about the rate it had alone (loose:
	// the 2-core test machine is shared; runs give 0.8-1.1x).
	if fastBad.Load() != 0 || beside < 0.4*alone {
		t.Fatalf("fast: %d refusals, %.0f samples/s beside slow, %.0f/s alone", fastBad.Load(), beside, alone)
	}

	// A raised limit applies on every node without a restart.
	writeConfig(limit + 2000)
	ts += 1000
	waitFor(t, 10*time.Second, "the raised limit on every node", func() bool {
		for _, n := range nodes {
			if code, _ := clusterPush(n.http, "capped", seriesBody(t, "c", 4500, 4600, ts)); code != 204 {
				return false
			}
		}
		return true
	})
}
