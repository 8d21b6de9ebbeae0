package limits

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/otlptranslator"
)

// testDefaults are valid defaults, Myelin's flag defaults.
func testDefaults() Limits { return Defaults() }

func TestParseConfig(t *testing.T) {
	d := testDefaults()
	for _, tc := range []struct {
		name    string
		in      string
		want    map[string]func(*Limits) // tenant -> the changes to the defaults
		wantErr []string                 // substrings of the error
	}{
		{name: "empty file", in: "", want: map[string]func(*Limits){}},
		{name: "empty overrides", in: "overrides:\n", want: map[string]func(*Limits){}},
		{name: "a tenant with defaults", in: "overrides:\n  a: {}\n  b:\n", want: map[string]func(*Limits){
			"a": func(*Limits) {}, "b": func(*Limits) {},
		}},
		{name: "overrides inherit the defaults", in: `
overrides:
  team-a:
    ingestion_rate: 50000
    ingestion_burst_size: 500000
    max_global_series_per_user: 2000000
    max_query_lookback: 30d
    max_query_length: 1h30m
    query_timeout: 1m
  team-b:
    max_fetched_series_per_query: 1000
    results_cache_ttl: 5m
    query_sharding_total_shards: 4
    query_sharding_max_sharded_queries: 32
    align_queries_with_step: true
    out_of_order_time_window: 10m
`, want: map[string]func(*Limits){
			"team-a": func(l *Limits) {
				l.IngestionRate, l.IngestionBurstSize, l.MaxGlobalSeriesPerUser = 50000, 500000, 2000000
				l.MaxQueryLookback = Duration(30 * 24 * time.Hour)
				l.MaxQueryLength = Duration(90 * time.Minute)
				l.QueryTimeout = Duration(time.Minute)
			},
			"team-b": func(l *Limits) {
				l.MaxFetchedSeriesPerQuery = 1000
				l.ResultsCacheTTL = Duration(5 * time.Minute)
				l.QueryShardingTotalShards = 4
				l.QueryShardingMaxShardedQueries = 32
				l.AlignQueriesWithStep = true
				l.OutOfOrderTimeWindow = Duration(10 * time.Minute)
			},
		}},
		{name: "OTLP settings, Mimir's shapes", in: `
overrides:
  nhcb:
    otel_convert_histograms_to_nhcb: true
    otel_native_delta_ingestion: true
    promote_otel_resource_attributes: "service.version, k8s.pod.name"
    otel_keep_identifying_resource_attributes: true
    otel_promote_scope_metadata: true
  list:
    promote_otel_resource_attributes: [a, b]
  no-suffixes:
    otel_metric_suffixes_enabled: false
  utf8:
    otel_translation_strategy: NoUTF8EscapingWithSuffixes
  bare:
    otel_translation_strategy: NoTranslation
  derived:
    otel_translation_strategy: ""
    otel_metric_suffixes_enabled: false
`, want: map[string]func(*Limits){
			"nhcb": func(l *Limits) {
				l.OTelConvertHistogramsToNHCB, l.OTelNativeDeltaIngestion = true, true
				l.PromoteOTelResourceAttributes = CSV{"service.version", "k8s.pod.name"}
				l.OTelKeepIdentifyingResourceAttributes, l.OTelPromoteScopeMetadata = true, true
			},
			"list": func(l *Limits) { l.PromoteOTelResourceAttributes = CSV{"a", "b"} },
			// Only the suffixes named: the default strategy's escaping
			// stays, its suffixes go.
			"no-suffixes": func(l *Limits) {
				l.OTelMetricSuffixesEnabled, l.OTelTranslationStrategy = false, otlptranslator.UnderscoreEscapingWithoutSuffixes
			},
			"utf8": func(l *Limits) { l.OTelTranslationStrategy = otlptranslator.NoUTF8EscapingWithSuffixes },
			// Only the strategy named: the suffixes follow it.
			"bare": func(l *Limits) {
				l.OTelMetricSuffixesEnabled, l.OTelTranslationStrategy = false, otlptranslator.NoTranslation
			},
			"derived": func(l *Limits) { l.OTelMetricSuffixesEnabled, l.OTelTranslationStrategy = false, "" },
		}},
		{name: "OTLP settings refused", in: `
overrides:
  a:
    otel_translation_strategy: Bogus
  b:
    otel_translation_strategy: NoTranslation
    otel_metric_suffixes_enabled: true
`, wantErr: []string{
			`tenant "a" (line 3): otel_translation_strategy (-distributor.otel-translation-strategy): unknown strategy "Bogus"`,
			`tenant "b" (line 5): otel_translation_strategy (-distributor.otel-translation-strategy): NoTranslation disagrees with otel_metric_suffixes_enabled: true`,
		}},
		{name: "unknown section", in: "multi_kv_config: {}\noverrides: {}\n", wantErr: []string{`line 1: unknown section "multi_kv_config"`}},
		{name: "unknown limit", in: "overrides:\n  a:\n    max_global_series_per_usr: 5\n", wantErr: []string{`line 3: unknown limit "max_global_series_per_usr"`, "max_global_series_per_user"}},
		{name: "bad tenant", in: "overrides:\n  a/b: {}\n", wantErr: []string{"line 2: overrides: tenant: ID \"a/b\" has unsupported character"}},
		{name: "every problem at once", in: `
overrides:
  a:
    ingestion_rate: -1
    max_label_names_per_series: 0
  b:
    creation_grace_period: 1h
    ingestion_rate: 10
    ingestion_burst_size: 0
  c:
    max_query_lookback: soon
  d:
    query_timeout: 3m
  e:
    max_queriers_per_tenant: -1
  f:
    out_of_order_time_window: 100y
`, wantErr: []string{
			`tenant "f" (line 16): out_of_order_time_window (-ingester.out-of-order-time-window): 100y: want 0 (off) or a positive whole number of milliseconds, at most 2^40 (34 years)`,
			`tenant "e" (line 14): max_queriers_per_tenant (-query-frontend.max-queriers-per-tenant): -1 is negative`,
			`tenant "d" (line 12): query_timeout (-query.timeout): 3m is above the default 2m`,
			`tenant "a" (line 3): ingestion_rate (-distributor.ingestion-rate-limit): -1`,
			`tenant "a" (line 3): max_label_names_per_series (-validation.max-label-names-per-series): 0: want at least 1`,
			`tenant "b" (line 6): creation_grace_period (-validation.create-grace-period): 1h is above the default 10m`,
			`tenant "b" (line 6): ingestion_burst_size (-distributor.ingestion-burst-size): 0: want at least 1 with an ingestion rate`,
			`tenant "c" (line 10)`, `not a valid duration string: "soon"`,
		}},
		{name: "not yaml", in: "overrides: [\n", wantErr: []string{"yaml"}},
		{name: "overrides not a mapping", in: "overrides: [a, b]\n", wantErr: []string{"overrides: want a mapping"}},
		{name: "tenant twice", in: "overrides:\n  a: {}\n  a: {}\n", wantErr: []string{`line 3: overrides: tenant "a" twice`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.in), d)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("ParseConfig = %+v, want an error", c)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Tenants) != len(tc.want) {
				t.Fatalf("tenants %v, want %d", c.Names(), len(tc.want))
			}
			for name, change := range tc.want {
				want := d
				change(&want)
				if got := c.Tenants[name]; got == nil || !reflect.DeepEqual(*got, want) {
					t.Errorf("tenant %s: %+v, want %+v", name, got, want)
				}
			}
			if len(c.SHA256) != 64 {
				t.Errorf("hash %q", c.SHA256)
			}
		})
	}
}

func TestOverrides(t *testing.T) {
	d := testDefaults()
	o, err := NewOverrides(d)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig([]byte("overrides:\n  a:\n    max_fetched_series_per_query: 10\n    query_timeout: 1m\n  b:\n    max_fetched_series_per_query: 20\n    max_query_length: 1h\n"), d)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.MaxFetchedSeriesPerQuery("a"); got != 0 {
		t.Fatalf("before Set: %d", got)
	}
	o.Set(c)
	if got := o.MaxFetchedSeriesPerQuery("a"); got != 10 {
		t.Fatalf("a: %d", got)
	}
	if got := o.MaxFetchedSeriesPerQuery("z"); got != 0 {
		t.Fatalf("a tenant without overrides: %d", got)
	}
	r := o.Read([]string{"a", "b", "z"})
	if r.MaxFetchedSeriesPerQuery != 10 || r.MaxQueryLength != Duration(time.Hour) || r.QueryTimeout != Duration(time.Minute) {
		t.Fatalf("federated read limits: %+v", r)
	}
	if _, err := NewOverrides(Limits{}); err == nil {
		t.Fatal("zero defaults accepted")
	}
}

func TestIngestionLimiter(t *testing.T) {
	d := testDefaults()
	o, _ := NewOverrides(d)
	c, err := ParseConfig([]byte("overrides:\n  a:\n    ingestion_rate: 1000\n    ingestion_burst_size: 2000\n  b:\n    ingestion_rate: 100\n    ingestion_burst_size: 100\n"), d)
	if err != nil {
		t.Fatal(err)
	}
	o.Set(c)
	nodes := 1
	l := NewIngestionLimiter(o, func() int { return nodes })
	t0 := time.Unix(1000, 0)
	steps := []struct {
		name   string
		at     time.Duration
		tenant string
		n      int
		want   bool
	}{
		{"burst", 0, "a", 2000, true},
		{"empty", 0, "a", 1, false},
		{"other tenant unaffected", 0, "b", 100, true},
		{"no rate: no limit", 0, "z", 1 << 30, true},
		{"refilled 500 in 0.5s", 500 * time.Millisecond, "a", 500, true},
		{"not more", 500 * time.Millisecond, "a", 1, false},
		{"more than the burst never passes", 10 * time.Second, "a", 2001, false},
		{"refused took nothing", 10 * time.Second, "a", 2000, true},
	}
	for _, s := range steps {
		if got := l.AllowN(t0.Add(s.at), s.tenant, s.n); got != s.want {
			t.Fatalf("%s: AllowN(%v, %s, %d) = %v", s.name, s.at, s.tenant, s.n, got)
		}
	}
	// Three nodes: each refills a third of the rate.
	nodes = 3
	t1 := t0.Add(time.Hour)
	if !l.AllowN(t1, "a", 2000) {
		t.Fatal("full bucket after an hour")
	}
	if l.AllowN(t1.Add(time.Second), "a", 400) {
		t.Fatal("refilled at the whole rate on one of three nodes")
	}
	if !l.AllowN(t1.Add(time.Second), "a", 333) {
		t.Fatal("did not refill a third of the rate")
	}
	// Idle buckets are forgotten.
	l.AllowN(t1.Add(2*time.Hour), "b", 1)
	l.mu.Lock()
	n := len(l.mu.buckets)
	l.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d buckets after a sweep, want 1", n)
	}
}

func TestQueryBudget(t *testing.T) {
	var nilBudget *QueryBudget
	if nilBudget.AddSeries(1) != nil || nilBudget.AddChunkBytes(1<<40) != nil || nilBudget.CheckSelect(1<<30) != nil {
		t.Fatal("a nil budget refused")
	}
	if NewQueryBudget(0, 0) != nil {
		t.Fatal("a budget without limits")
	}
	b := NewQueryBudget(2, 100)
	for _, h := range []uint64{1, 2, 1, 2, 2} {
		if err := b.AddSeries(h); err != nil {
			t.Fatalf("series %d: %v", h, err)
		}
	}
	err := b.AddSeries(3)
	if !errors.Is(err, ErrQueryLimit) || !strings.HasPrefix(err.Error(), "the query exceeded the maximum number of series (limit: 2 series) (err-mimir-max-series-per-query). Consider") {
		t.Fatalf("third series: %v", err)
	}
	if b.CheckSelect(2) != nil || b.CheckSelect(3) == nil {
		t.Fatal("CheckSelect")
	}
	if b.AddChunkBytes(100) != nil {
		t.Fatal("100 bytes of 100")
	}
	if err := b.AddChunkBytes(1); !errors.Is(err, ErrQueryLimit) || !strings.Contains(err.Error(), "aggregated chunks size limit (limit: 100 bytes) (err-mimir-max-chunks-bytes-per-query)") {
		t.Fatalf("101 bytes: %v", err)
	}
}

// TestMessages pins the texts users and runbooks match: Mimir's.
func TestMessages(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{SeriesPerUserError(100), "per-user series limit of 100 exceeded (err-mimir-max-series-per-user). To adjust the related per-tenant limit, configure -ingester.max-global-series-per-user, or contact your service administrator."},
		{SeriesPerMetricError(7), "per-metric series limit of 7 exceeded (err-mimir-max-series-per-metric). To adjust the related per-tenant limit, configure -ingester.max-global-series-per-metric, or contact your service administrator."},
		{QueryLengthError(time.Hour, time.Minute).Error(), "the query time range exceeds the limit (query length: 1h0m0s, limit: 1m0s) (err-mimir-max-query-length). To adjust the related per-tenant limit, configure -store.max-query-length, or contact your service administrator."},
		{SeriesPerQueryError(1).Error(), "the query exceeded the maximum number of series (limit: 1 series) (err-mimir-max-series-per-query). Consider reducing the time range and/or number of series selected by the query. One way to reduce the number of selected series is to add more label matchers to the query. Otherwise, to adjust the related per-tenant limit, configure -querier.max-fetched-series-per-query, or contact your service administrator."},
		{IngestionRateError(10, 5), "the request has been rejected because the tenant exceeded the ingestion rate limit, set to 10 items/s with a maximum allowed burst of 5. This limit is applied on the total number of samples received across all nodes (err-mimir-tenant-max-ingestion-rate). To adjust the related per-tenant limits, configure -distributor.ingestion-rate-limit and -distributor.ingestion-burst-size, or contact your service administrator."},
	} {
		if tc.got != tc.want {
			t.Errorf("got  %s\nwant %s", tc.got, tc.want)
		}
	}
}

func TestLoader(t *testing.T) {
	d := testDefaults()
	o, _ := NewOverrides(d)
	path := filepath.Join(t.TempDir(), "runtime.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("overrides:\n  a:\n    max_global_series_per_user: 5\n")
	reg := prometheus.NewRegistry()
	l, err := NewLoader(LoaderOptions{Path: path, Overrides: o, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if got := o.MaxGlobalSeriesPerUser("a"); got != 5 {
		t.Fatalf("loaded: %d", got)
	}
	write("overrides:\n  a:\n    max_global_series_per_user: 6\n")
	if err := l.Reload(); err != nil || o.MaxGlobalSeriesPerUser("a") != 6 {
		t.Fatalf("reload: %v, limit %d", err, o.MaxGlobalSeriesPerUser("a"))
	}
	write("overrides:\n  a:\n    max_global_series_per_user: -6\n")
	err = l.Reload()
	if err == nil || !strings.Contains(err.Error(), "max_global_series_per_user") {
		t.Fatalf("bad file: %v", err)
	}
	if got := o.MaxGlobalSeriesPerUser("a"); got != 6 {
		t.Fatalf("a bad file replaced the config: %d", got)
	}
	if got := testutil.ToFloat64(l.success); got != 0 {
		t.Fatalf("last_reload_successful = %v after a bad file", got)
	}
	if _, _, lastErr := l.Status(); lastErr == nil {
		t.Fatal("status has no error")
	}
	if err := l.Reload(); err != nil { // unchanged: not tried again
		t.Fatalf("unchanged bad file: %v", err)
	}
	if got := testutil.ToFloat64(l.reloads.WithLabelValues(resultInvalid)); got != 1 {
		t.Fatalf("invalid reloads = %v", got)
	}
	os.Remove(path)
	if err := l.Reload(); err == nil || o.MaxGlobalSeriesPerUser("a") != 6 {
		t.Fatalf("missing file: %v", err)
	}
	write("overrides: {}\n")
	if err := l.Reload(); err != nil || o.MaxGlobalSeriesPerUser("a") != 0 || testutil.ToFloat64(l.success) != 1 {
		t.Fatalf("good file again: %v", err)
	}
	// A bad file at start is refused.
	write("overrides:\n  a:\n    nope: 1\n")
	if _, err := NewLoader(LoaderOptions{Path: path, Overrides: o}); err == nil || !strings.Contains(err.Error(), `unknown limit "nope"`) {
		t.Fatalf("bad file at start: %v", err)
	}
}

// OTelStrategy derives the strategy as Mimir does when none is set.
func TestOTelStrategy(t *testing.T) {
	for _, tc := range []struct {
		strategy         otlptranslator.TranslationStrategyOption
		suffixes, legacy bool
		want             otlptranslator.TranslationStrategyOption
	}{
		{"", true, true, otlptranslator.UnderscoreEscapingWithSuffixes},
		{"", false, true, otlptranslator.UnderscoreEscapingWithoutSuffixes},
		{"", true, false, otlptranslator.NoUTF8EscapingWithSuffixes},
		{"", false, false, otlptranslator.NoTranslation},
		{otlptranslator.UnderscoreEscapingWithSuffixes, true, false, otlptranslator.UnderscoreEscapingWithSuffixes},
	} {
		l := Limits{OTelTranslationStrategy: tc.strategy, OTelMetricSuffixesEnabled: tc.suffixes}
		if got := l.OTelStrategy(tc.legacy); got != tc.want {
			t.Errorf("%+v, legacy names %v: %s, want %s", tc, tc.legacy, got, tc.want)
		}
	}
}
