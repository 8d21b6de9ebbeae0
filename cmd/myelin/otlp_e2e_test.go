package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/myelindb/myelin/server/auth"
)

// otlpQuery runs an instant query as token (tenant org, if set) and
// returns each series as its labels in Prometheus's text form with its
// value: {a="b", ...}=v.
func otlpQuery(t *testing.T, base, token, org, q string) []string {
	t.Helper()
	code, body := authDo(t, base, "GET", "/api/v1/query?query="+url.QueryEscape(q), token, org, nil)
	if code != 200 {
		t.Fatalf("query %s: %d %s", q, code, body)
	}
	var resp struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range resp.Data.Result {
		var ls []string
		for k, v := range r.Metric {
			ls = append(ls, k+"="+v)
		}
		sort.Strings(ls)
		out = append(out, "{"+strings.Join(ls, ",")+"}="+r.Value[1].(string))
	}
	sort.Strings(out)
	return out
}

// newOTLPProvider is the OpenTelemetry Go SDK's meter provider exporting
// to base with the real OTLP/HTTP exporter; flush exports.
func newOTLPProvider(t *testing.T, base string, headers map[string]string, gzipped bool, views ...sdkmetric.View) *sdkmetric.MeterProvider {
	t.Helper()
	comp := otlpmetrichttp.NoCompression
	if gzipped {
		comp = otlpmetrichttp.GzipCompression
	}
	exp, err := otlpmetrichttp.New(t.Context(), otlpmetrichttp.WithEndpointURL(base+"/otlp/v1/metrics"),
		otlpmetrichttp.WithHeaders(headers), otlpmetrichttp.WithCompression(comp), otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}))
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "checkout"), attribute.String("service.namespace", "shop"),
		attribute.String("service.instance.id", "pod-1"), attribute.String("host.name", "node-7"), attribute.String("k8s.cluster.name", "eu1"))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithView(views...),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp
}

// The OpenTelemetry Go SDK's OTLP/HTTP exporter sends to a real node;
// the Prometheus API answers with the names and labels Prometheus 3's
// OTLP receiver gives (its default translation, UnderscoreEscapingWithSuffixes).
func TestOTLPSDKExporter(t *testing.T) {
	path, tokens := writeAuthFile(t, []auth.Entry{
		{Name: "alpha", Tenants: []string{alpha}, Scopes: []auth.Scope{auth.ScopeWrite, auth.ScopeRead}},
		{Name: "both", Tenants: []string{alpha, bravo}, Scopes: []auth.Scope{auth.ScopeWrite, auth.ScopeRead}},
	})
	_, base := startAuthNode(t, path)
	ctx := t.Context()

	for _, gz := range []bool{false, true} {
		name := "plain"
		if gz {
			name = "gzip"
		}
		t.Run(name, func(t *testing.T) {
			// alpha's tenant from its token; bravo's from X-Scope-OrgID.
			for _, c := range []struct{ org, token string }{{alpha, tokens["alpha"]}, {bravo, tokens["both"]}} {
				h := map[string]string{"Authorization": "Bearer " + c.token}
				if c.org == bravo {
					h["X-Scope-OrgID"] = bravo
				}
				mp := newOTLPProvider(t, base, h, gz)
				m := mp.Meter("shop/checkout")
				reqs, _ := m.Int64Counter("http.server.requests."+name, metric.WithUnit("{request}"))
				secs, _ := m.Float64Counter("cpu.time."+name, metric.WithUnit("s"))
				mem, _ := m.Int64Gauge("memory.usage."+name, metric.WithUnit("By"))
				lat, _ := m.Float64Histogram("latency."+name, metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(0.1, 1))
				reqs.Add(ctx, 3, metric.WithAttributes(attribute.String("http.method", "GET")))
				secs.Add(ctx, 1.5)
				mem.Record(ctx, 2048)
				lat.Record(ctx, 0.05)
				lat.Record(ctx, 0.5)
				if c.org == bravo {
					reqs.Add(ctx, 4, metric.WithAttributes(attribute.String("http.method", "GET"))) // 7 in bravo
				}
				if err := mp.ForceFlush(ctx); err != nil {
					t.Fatal(err)
				}
			}
			job := `instance=pod-1,job=shop/checkout`
			for _, c := range []struct {
				q    string
				want []string
			}{
				{`{__name__=~".+_` + name + `_.*"}`, []string{
					"{__name__=cpu_time_" + name + "_seconds_total," + job + "}=1.5",
					"{__name__=http_server_requests_" + name + "_total,http_method=GET," + job + "}=3",
					"{__name__=latency_" + name + "_seconds_bucket," + job + ",le=+Inf}=2",
					"{__name__=latency_" + name + "_seconds_bucket," + job + ",le=0.1}=1",
					"{__name__=latency_" + name + "_seconds_bucket," + job + ",le=1}=2",
					"{__name__=latency_" + name + "_seconds_count," + job + "}=2",
					"{__name__=latency_" + name + "_seconds_sum," + job + "}=0.55",
					"{__name__=memory_usage_" + name + "_bytes," + job + "}=2048",
				}},
				{`target_info`, []string{"{__name__=target_info,host_name=node-7," + job + ",k8s_cluster_name=eu1}=1"}},
			} {
				if got := otlpQuery(t, base, tokens["alpha"], "", c.q); strings.Join(got, "\n") != strings.Join(c.want, "\n") {
					t.Errorf("alpha: %s:\n got %s\nwant %s", c.q, strings.Join(got, "\n     "), strings.Join(c.want, "\n     "))
				}
			}
			// Tenant isolation: bravo sees its own counter only.
			got := otlpQuery(t, base, tokens["both"], bravo, `http_server_requests_`+name+`_total`)
			if want := "{__name__=http_server_requests_" + name + "_total,http_method=GET," + job + "}=7"; len(got) != 1 || got[0] != want {
				t.Errorf("bravo: got %v, want %s", got, want)
			}
		})
	}

	t.Run("exponential histogram", func(t *testing.T) {
		exp := sdkmetric.NewView(sdkmetric.Instrument{Name: "expo"}, sdkmetric.Stream{
			Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20}})
		mp := newOTLPProvider(t, base, map[string]string{"Authorization": "Bearer " + tokens["alpha"]}, true, exp)
		m := mp.Meter("x")
		h, _ := m.Float64Histogram("expo")
		g, _ := m.Float64Gauge("beside.expo")
		h.Record(ctx, 1)
		h.Record(ctx, 3)
		g.Record(ctx, 5)
		if err := mp.ForceFlush(ctx); err != nil {
			t.Fatalf("flush: %v", err)
		}
		if got := otlpQuery(t, base, tokens["alpha"], "", `beside_expo`); len(got) != 1 || !strings.HasSuffix(got[0], "=5") {
			t.Errorf("the gauge beside the histogram: %v", got)
		}
		// A native histogram: its count and sum, one series.
		if got := otlpQuery(t, base, tokens["alpha"], "", `histogram_count(expo) + histogram_sum(expo)`); len(got) != 1 || !strings.HasSuffix(got[0], "=6") {
			t.Errorf("count + sum of the native histogram: %v", got)
		}
	})

	t.Run("json", func(t *testing.T) {
		// bad.expo counts one observation in no bucket: an invalid native
		// histogram, refused alone as a partial success.
		body := `{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"j"}}]},
			"scopeMetrics":[{"metrics":[{"name":"json.gauge","unit":"By","gauge":{"dataPoints":[{"asDouble":42,"timeUnixNano":"` +
			jsonNanos(time.Now()) + `"}]}},
			{"name":"bad.expo","exponentialHistogram":{"aggregationTemporality":2,"dataPoints":[{"count":"1","timeUnixNano":"` + jsonNanos(time.Now()) + `"}]}}]}]}]}`
		var zipped bytes.Buffer
		zw := gzip.NewWriter(&zipped)
		_, _ = zw.Write([]byte(body))
		_ = zw.Close()
		req, _ := http.NewRequest("POST", base+"/otlp/v1/metrics", &zipped)
		req.Header.Set("Authorization", "Bearer "+tokens["alpha"])
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", "gzip")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			PartialSuccess struct {
				RejectedDataPoints string `json:"rejectedDataPoints"`
				ErrorMessage       string `json:"errorMessage"`
			} `json:"partialSuccess"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" ||
			out.PartialSuccess.RejectedDataPoints != "1" || !strings.Contains(out.PartialSuccess.ErrorMessage, `invalid native histogram (histogram 0 at`) {
			t.Errorf("answer %d %s: %+v", resp.StatusCode, resp.Header.Get("Content-Type"), out)
		}
		if got := otlpQuery(t, base, tokens["alpha"], "", `json_gauge_bytes`); len(got) != 1 || got[0] != "{__name__=json_gauge_bytes,job=j}=42" {
			t.Errorf("json gauge: %v", got)
		}
	})
}

func jsonNanos(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }
