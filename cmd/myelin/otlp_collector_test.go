package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
)

// findOtelcol returns the path of the OpenTelemetry Collector that `make
// otelcol` builds (bin/otelcol, from tools/otelcol), or $OTELCOL.
// Without one the test is skipped, unless OTELCOL_REQUIRED is set (CI
// sets it).
func findOtelcol(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("OTELCOL"); p != "" {
		return p
	}
	if p, err := filepath.Abs("../../bin/otelcol"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := "no OpenTelemetry Collector: build it with `make otelcol` (bin/otelcol) or set OTELCOL"
	if os.Getenv("OTELCOL_REQUIRED") != "" {
		t.Fatal(msg + "; OTELCOL_REQUIRED is set")
	}
	t.Skip(msg)
	return ""
}

// TestE2EOTLPCollector: the OpenTelemetry Go SDK exports to a real
// OpenTelemetry Collector (OTLP receiver, batch processor), which sends
// every batch with two OTLP/HTTP exporters, gzip, retries and queue on,
// to a real Prometheus 3's OTLP receiver and to a tenant of myelin (its
// X-Scope-OrgID in the exporter's headers); then the same instant and
// range queries answer identically from both, once both hold the last
// export.
func TestE2EOTLPCollector(t *testing.T) {
	col := findOtelcol(t)
	bin := findPrometheus3(t)
	my := startMyelin(t, t.TempDir(), "127.0.0.1:0", "-auth.multitenancy-enabled=true")
	prom := runPrometheus(t, bin, "global:\n  scrape_interval: 1m\n", filepath.Join(t.TempDir(), "data"), freeAddr(t), "--web.enable-otlp-receiver")
	const tenant = "otlp-collector"

	recv := freeAddr(t)
	cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      http:
        endpoint: %s
processors:
  batch:
    timeout: 200ms
exporters:
  otlphttp/prometheus:
    metrics_endpoint: http://%s/api/v1/otlp/v1/metrics
    compression: gzip
  otlphttp/myelin:
    metrics_endpoint: http://%s/otlp/v1/metrics
    compression: gzip
    headers:
      X-Scope-OrgID: %s
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlphttp/prometheus, otlphttp/myelin]
`, recv, prom.addr, my.addr, tenant)
	cfgFile := filepath.Join(t.TempDir(), "otelcol.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(col, "--config=file:"+cfgFile)
	cmd.SysProcAttr = childProcAttr()
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start otelcol: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("otelcol config:\n%s\notelcol log:\n%s", cfg, tail(log.String(), 40))
		}
	})
	poll(t, 30*time.Second, 200*time.Millisecond, "otelcol's OTLP receiver", func() (bool, string) {
		select {
		case <-exited:
			t.Fatalf("otelcol exited: %v\n%s", waitErr, tail(log.String(), 40))
		default:
		}
		c, err := net.DialTimeout("tcp", recv, time.Second)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})

	ctx := t.Context()
	exp, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL("http://"+recv+"/v1/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	start, end := recordOTLP(t, ctx, exp)
	promAPI := apiClient{name: "prometheus", base: "http://" + prom.addr + "/api/v1"}
	myAPI := apiClient{name: "myelin", base: "http://" + my.addr + "/prometheus/api/v1", tenant: tenant}
	// The collector forwards asynchronously: wait until both hold the
	// last export's gauge value.
	last := fmt.Sprintf(`count(timestamp(memory_usage_bytes) >= %s)`, apiTime(end.UnixMilli()-400))
	poll(t, 30*time.Second, 200*time.Millisecond, "the last export in prometheus and myelin", func() (bool, string) {
		a, errA := promAPI.scalarValue(last)
		b, errB := myAPI.scalarValue(last)
		return errA == nil && errB == nil && a == 1 && b == 1, fmt.Sprintf("prometheus %v %v, myelin %v %v", a, errA, b, errB)
	})
	compareOTLP(t, promAPI, myAPI, tenant, []string{
		`{__name__=~".+", __name__!~"prometheus_.*|scrape_.*|up"}`,
		`http_latency_seconds_bucket`,
		`histogram_quantile(0.9, sum by (le, http_method) (rate(http_latency_seconds_bucket[5s])))`,
	}, start, end)
}
