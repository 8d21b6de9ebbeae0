#!/bin/sh
# Record native histograms from a real Prometheus 3 and write them as a
# histdata file (internal/histdata) for the histogram chunk benchmarks:
# Prometheus scrapes its own /metrics every second with
# scrape_native_histograms, evaluates a few rules every 5 s, and a query
# loop keeps its HTTP, engine and rule histograms moving. After DURATION
# seconds it stops, and bench/cmd/histdata reads the native histograms of
# its data directory (blocks and WAL).
#
#   PROMETHEUS=/path/to/prometheus-3 DURATION=1800 scripts/record-native-histograms.sh
#
# PROMETHEUS unset: builds Prometheus v3.14 (module v0.314.0) into
# $WORK/prometheus first (a few minutes; needs the Go module proxy).
# OUT defaults to chunkenc/testdata/histograms-recorded.hd.gz; WORK (a
# temporary directory by default) keeps the config and data.
set -eu
DURATION=${DURATION:-1800}
OUT=${OUT:-chunkenc/testdata/histograms-recorded.hd.gz}
WORK=${WORK:-$(mktemp -d)}
PORT=${PORT:-29391}
mkdir -p "$WORK"
if [ -z "${PROMETHEUS:-}" ]; then
	mkdir -p "$WORK/build"
	cat > "$WORK/build/go.mod" <<'MOD'
module prombuild

go 1.25

require github.com/prometheus/prometheus v0.314.0

// Prometheus's own go.mod pins this module family in its replace; without
// it the build mixes incompatible cloud.google.com/go versions.
replace cloud.google.com/go => cloud.google.com/go v0.123.0
MOD
	(cd "$WORK/build" && GOFLAGS=-mod=mod go build -o "$WORK/prometheus" github.com/prometheus/prometheus/cmd/prometheus)
	PROMETHEUS="$WORK/prometheus"
fi
"$PROMETHEUS" --version 2>&1 | head -1
cat > "$WORK/prometheus.yml" <<CFG
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 5s
  scrape_native_histograms: true
rule_files: [rules.yml]
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:$PORT']
CFG
cat > "$WORK/rules.yml" <<'RULES'
groups:
  - name: load
    rules:
      - record: job:http_requests:rate1m
        expr: sum by (job) (rate(prometheus_http_requests_total[1m]))
      - record: handler:request_duration_seconds:rate1m
        expr: sum by (handler) (rate(prometheus_http_request_duration_seconds[1m]))
      - record: job:request_duration_seconds:p99
        expr: histogram_quantile(0.99, sum by (job) (rate(prometheus_http_request_duration_seconds[1m])))
RULES
rm -rf "$WORK/data"
"$PROMETHEUS" --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/data" \
	--web.listen-address="127.0.0.1:$PORT" > "$WORK/prometheus.log" 2>&1 &
prom=$!
trap 'kill $prom 2>/dev/null || true' INT TERM EXIT
base="http://127.0.0.1:$PORT"
i=0
end=$(( $(date +%s) + DURATION ))
while [ "$(date +%s)" -lt "$end" ]; do
	i=$((i + 1))
	# Queries of different cost: instant, range, metadata, and a miss.
	curl -s -o /dev/null "$base/api/v1/query?query=up" || true
	curl -s -o /dev/null "$base/api/v1/query_range?query=rate(prometheus_http_requests_total%5B1m%5D)&start=$(( $(date +%s) - 600 ))&end=$(date +%s)&step=$(( i % 20 + 1 ))" || true
	if [ $((i % 3)) -eq 0 ]; then curl -s -o /dev/null "$base/api/v1/series?match%5B%5D=%7B__name__%3D~%22prometheus_.%2A%22%7D" || true; fi
	if [ $((i % 7)) -eq 0 ]; then curl -s -o /dev/null "$base/api/v1/labels" || true; fi
	if [ $((i % 11)) -eq 0 ]; then curl -s -o /dev/null "$base/metrics" || true; fi
	if [ $((i % 13)) -eq 0 ]; then curl -s -o /dev/null "$base/api/v1/query?query=histogram_quantile(0.9,rate(prometheus_http_request_duration_seconds%5B5m%5D))" || true; fi
	sleep "0.$((i % 9 + 1))"
done
kill $prom
wait $prom || true
trap - INT TERM EXIT
go run ./bench/cmd/histdata -tsdb "$WORK/data" -out "$OUT"
