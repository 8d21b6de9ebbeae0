package main

import (
	"context"
	"errors"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
)

// teeExporter exports every collection to all its exporters: the same
// ResourceMetrics, timestamps included, reach every receiver.
type teeExporter struct{ exps []sdkmetric.Exporter }

func (e teeExporter) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return e.exps[0].Temporality(k)
}

func (e teeExporter) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return e.exps[0].Aggregation(k)
}

func (e teeExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	var errs []error
	for _, x := range e.exps {
		errs = append(errs, x.Export(ctx, rm))
	}
	return errors.Join(errs...)
}

func (e teeExporter) ForceFlush(ctx context.Context) error {
	var errs []error
	for _, x := range e.exps {
		errs = append(errs, x.ForceFlush(ctx))
	}
	return errors.Join(errs...)
}

func (e teeExporter) Shutdown(ctx context.Context) error {
	var errs []error
	for _, x := range e.exps {
		errs = append(errs, x.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// TestE2EOTLPPrometheus3: the OpenTelemetry Go SDK's OTLP/HTTP exporter
// sends the same counters, gauges, explicit and exponential histograms
// (the same export, timestamps included) to two real Prometheus 3
// servers' OTLP receivers, one converting explicit histograms to NHCB,
// and to two tenants of myelin, one with otel_convert_histograms_to_nhcb
// in its overrides; then the same instant and range queries, raw native
// histograms and histogram_quantile over them included, answer
// identically from each Prometheus and its tenant.
func TestE2EOTLPPrometheus3(t *testing.T) {
	bin := findPrometheus3(t)
	overrides := filepath.Join(t.TempDir(), "runtime.yaml")
	if err := os.WriteFile(overrides, []byte("overrides:\n  otlp-nhcb:\n    otel_convert_histograms_to_nhcb: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	my := startMyelin(t, t.TempDir(), "127.0.0.1:0", "-auth.multitenancy-enabled=true", "-runtime-config.file="+overrides)
	global := "global:\n  scrape_interval: 1m\n"
	promClassic := runPrometheus(t, bin, global, filepath.Join(t.TempDir(), "data"), freeAddr(t), "--web.enable-otlp-receiver")
	promNHCB := runPrometheus(t, bin, global+"otlp:\n  convert_histograms_to_nhcb: true\n", filepath.Join(t.TempDir(), "data"), freeAddr(t), "--web.enable-otlp-receiver")

	ctx := t.Context()
	exporter := func(url string, headers map[string]string) sdkmetric.Exporter {
		exp, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(url), otlpmetrichttp.WithHeaders(headers),
			otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression), otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}))
		if err != nil {
			t.Fatal(err)
		}
		return exp
	}
	tee := teeExporter{exps: []sdkmetric.Exporter{
		exporter("http://"+promClassic.addr+"/api/v1/otlp/v1/metrics", nil),
		exporter("http://"+promNHCB.addr+"/api/v1/otlp/v1/metrics", nil),
		exporter("http://"+my.addr+"/otlp/v1/metrics", map[string]string{"X-Scope-OrgID": "otlp-classic"}),
		exporter("http://"+my.addr+"/api/v1/otlp/v1/metrics", map[string]string{"X-Scope-OrgID": "otlp-nhcb"}),
	}}
	start, end := recordOTLP(t, ctx, tee)
	for _, c := range []struct {
		prom   *promProc
		tenant string
		// queries, instant at the end and range over the exports; a
		// query with "histograms" must return native histograms.
		queries []string
	}{
		{promClassic, "otlp-classic", []string{
			`{__name__=~".+", __name__!~"prometheus_.*|scrape_.*|up"}`,
			`http_latency_seconds_bucket`,
			`histogram_quantile(0.9, sum by (le, http_method) (rate(http_latency_seconds_bucket[5s])))`,
		}},
		{promNHCB, "otlp-nhcb", []string{
			`{__name__=~".+", __name__!~"prometheus_.*|scrape_.*|up"}`,
			`http_latency_seconds histograms`,
			`histogram_quantile(0.9, sum by (http_method) (rate(http_latency_seconds[5s])))`,
			`histogram_fraction(0, 0.1, rate(http_latency_seconds[5s]))`,
		}},
	} {
		promAPI := apiClient{name: "prometheus", base: "http://" + c.prom.addr + "/api/v1"}
		myAPI := apiClient{name: "myelin", base: "http://" + my.addr + "/prometheus/api/v1", tenant: c.tenant}
		compareOTLP(t, promAPI, myAPI, c.tenant, c.queries, start, end)
	}
}

// recordOTLP records counters, a gauge, explicit and exponential
// histograms with the OpenTelemetry Go SDK and exports them through exp
// ten times, 300 ms apart; it returns when the first and last were made.
func recordOTLP(t *testing.T, ctx context.Context, exp sdkmetric.Exporter) (start, end time.Time) {
	t.Helper()
	res := resource.NewSchemaless(attribute.String("service.name", "checkout"), attribute.String("service.namespace", "shop"),
		attribute.String("service.instance.id", "pod-1"), attribute.String("host.name", "node-7"))
	expo := sdkmetric.NewView(sdkmetric.Instrument{Name: "rpc.latency"}, sdkmetric.Stream{
		Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20}})
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithView(expo),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	m := mp.Meter("shop/checkout")
	reqs, _ := m.Int64Counter("http.server.requests", metric.WithUnit("{request}"))
	cpu, _ := m.Float64Counter("cpu.time", metric.WithUnit("s"))
	mem, _ := m.Int64Gauge("memory.usage", metric.WithUnit("By"))
	lat, _ := m.Float64Histogram("http.latency", metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(0.01, 0.05, 0.1, 0.5, 1, 5))
	rpc, _ := m.Float64Histogram("rpc.latency", metric.WithUnit("s"))

	// Ten exports 300 ms apart; the observations spread over four
	// decades, so the exponential histograms have many buckets (the SDK
	// starts at scale 20: both receivers scale them down to 8).
	start = time.Now()
	v := 0.0013
	for round := range 10 {
		for i := range 20 {
			v = math.Mod(v*7.3+0.0017, 3.0)
			method := []string{"GET", "POST"}[i%2]
			reqs.Add(ctx, int64(1+i%3), metric.WithAttributes(attribute.String("http.method", method)))
			lat.Record(ctx, v, metric.WithAttributes(attribute.String("http.method", method)))
			rpc.Record(ctx, v*float64(1+round), metric.WithAttributes(attribute.String("rpc.service", method)))
		}
		cpu.Add(ctx, 0.25*float64(round+1))
		mem.Record(ctx, int64(1000*(round%4+1)))
		if err := mp.ForceFlush(ctx); err != nil {
			t.Fatalf("export %d: %v", round, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	end = time.Now()
	return start, end
}

// compareOTLP compares the answers of promAPI and myAPI (tenant's) to
// queries and to the queries every OTLP comparison asks, instant at end
// and over [start, end]; a query with the suffix " histograms" must
// return native histograms.
func compareOTLP(t *testing.T, promAPI, myAPI apiClient, tenant string, queries []string, start, end time.Time) {
	t.Helper()
	at := end.UnixMilli()
	rangeParams := url.Values{"start": {apiTime(start.UnixMilli() - 1000)}, "end": {apiTime(at)}, "step": {"0.5"}}
	queries = append(queries,
		`rpc_latency_seconds histograms`,
		`rpc_latency_seconds[10s] histograms`,
		`histogram_quantile(0.5, rate(rpc_latency_seconds[5s]))`,
		`histogram_quantile(0.99, sum(rate(rpc_latency_seconds[5s])))`,
		`histogram_count(rate(rpc_latency_seconds[5s]))`,
		`histogram_sum(rpc_latency_seconds)`,
		`sum by (http_method) (rate(http_server_requests_total[5s]))`,
		`rate(cpu_time_seconds_total[5s])`,
		`max_over_time(memory_usage_bytes[5s])`,
		`target_info`,
	)
	for _, q := range queries {
		q, wantHist := strings.CutSuffix(q, " histograms")
		kinds := []string{"instant"}
		if !strings.HasSuffix(q, "]") {
			kinds = append(kinds, "range")
		}
		for _, kind := range kinds {
			answer := func(api apiClient) (string, error) {
				if kind == "range" {
					return canonicalRange(api, q, rangeParams)
				}
				return canonical(api, q, at)
			}
			a, errA := answer(promAPI)
			b, errB := answer(myAPI)
			switch {
			case errA != nil || errB != nil:
				t.Errorf("%s %s %s: prometheus: %v, myelin: %v", tenant, kind, q, errA, errB)
			case a != b:
				t.Errorf("%s %s %s: answers differ\nprometheus:\n%s\nmyelin:\n%s", tenant, kind, q, trimTo(a, 3000), trimTo(b, 3000))
			case strings.Count(a, "\n") == 0:
				t.Errorf("%s %s %s: empty answers: %s", tenant, kind, q, a)
			case wantHist && !strings.Contains(a, `"histogram`):
				t.Errorf("%s %s %s: no native histograms: %s", tenant, kind, q, trimTo(a, 500))
			default:
				t.Logf("%s %s %s: identical (%d bytes)", tenant, kind, q, len(a))
			}
		}
	}
}

// canonicalRange returns the result of the range query q as JSON with
// its series sorted by labels, for comparing two servers.
func canonicalRange(c apiClient, q string, params url.Values) (string, error) {
	p := url.Values{"query": {q}}
	for k, v := range params {
		p[k] = v
	}
	return canonicalAt(c, "/query_range", p)
}
