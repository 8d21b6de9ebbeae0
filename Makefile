# Myelin make targets; `make help` lists them. CI runs .ci/run, which runs `make check`.

GO          ?= go
# staticcheck 2026.2.2 (v0.8.2) is the newest release and supports Go 1.26.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Extra flags for `go test`, e.g. TESTFLAGS="-race -tags invariants" (as check does).
TESTFLAGS   ?=
# Per test binary: server/internal/promqlhttp runs every PromQL script part
# three ways and the compliance queries, ~8 minutes under -race on 2 busy cores.
TESTTIMEOUT ?= 20m
# Time per fuzz target for `make fuzz`.
FUZZTIME    ?= 30s
# Arguments for `make run`, e.g. ARGS="-http.listen-address :9010".
ARGS        ?=

.DEFAULT_GOAL := help

.PHONY: help run cluster build test e2e-deps check lint bench bench-scale bench-go bench-hist bench-rules bench-vm bench-prom3 victoriametrics otelcol histdata histdata-record fuzz clean ui ui-check ui-screenshot compliance-rw promql-frontend promql-rw bench-frontend bench-fairness bench-30d

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Variables: TESTFLAGS, TESTTIMEOUT=$(TESTTIMEOUT), FUZZTIME=$(FUZZTIME), ARGS (for run), SERIES, HOURS, BENCHARGS (for bench)"

run: build ## build and start a single node (data in ./data, HTTP on :9009)
	./bin/myelin $(ARGS)

cluster: build ## start 3 nodes on loopback (HTTP :9101-9103, Raft :9201-9203, data in ./data/cluster)
	BIN=./bin/myelin ./scripts/cluster.sh $(ARGS)

build: ## build bin/myelin
	$(GO) build -o bin/myelin ./cmd/myelin

test: ## run all tests (honours TESTFLAGS)
	$(GO) test -count=1 -timeout $(TESTTIMEOUT) $(TESTFLAGS) ./...

# The end-to-end tests in cmd/myelin run a real Prometheus (Debian's 2.42),
# the UI's browser test Debian's Chromium, the query frontend's results
# cache tests a real memcached (Debian's; each test starts its own on a
# free port), the alerting tests Debian's Alertmanager 0.25 and amtool
# (package prometheus-alertmanager): without them they skip, or fail when
# CI is set. .ci/run installs them the same way.
e2e-deps: ## install Prometheus, Chromium, memcached and Alertmanager for the end-to-end, browser, cache and alerting tests (apt-get, if missing)
	@missing=""; \
	command -v prometheus >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v memcached >/dev/null 2>&1 || missing="$$missing memcached"; \
	command -v amtool >/dev/null 2>&1 || missing="$$missing prometheus-alertmanager"; \
	if [ -z "$$missing" ]; then \
		echo "prometheus, chromium, memcached and prometheus-alertmanager found"; \
	else \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
		$$sudo apt-get update -q && \
		$$sudo apt-get install -y -q --no-install-recommends $$missing; \
	fi

# A real Prometheus 3 for the test that has it remote-write native
# histograms with Remote-Write 2.0 (Debian's 2.42 has no 2.0 sender);
# `make test` runs that test when bin/prometheus-3 exists and skips it
# otherwise, CI builds it first.
otelcol: ## build an OpenTelemetry Collector (v0.165.0: OTLP receiver, batch, OTLP/HTTP exporter) into bin/otelcol from tools/otelcol (a minute or two; once)
	@test -x bin/otelcol || (cd tools/otelcol && $(GO) build -o ../../bin/otelcol .)

victoriametrics: ## build single-node VictoriaMetrics v1.151.0 into bin/victoria-metrics from the Go module proxy (a minute or two; once)
	OUT=bin/victoria-metrics scripts/build-victoriametrics.sh

prometheus3: ## build Prometheus v3.14 into bin/prometheus-3 from the Go module proxy (a few minutes; once)
	OUT=bin/prometheus-3 scripts/build-prometheus3.sh

e2e-prometheus3: prometheus3 otelcol ## Prometheus 3 remote-writes native histograms into myelin, and the OTel SDK exports to both, directly and through an OpenTelemetry Collector: identical query answers
	PROMETHEUS3_REQUIRED=1 OTELCOL_REQUIRED=1 $(GO) test -count=1 -run '^TestE2E(Prometheus3|OTLPPrometheus3|OTLPCollector)' -v ./cmd/myelin/

# The UI's sources are in ui/ (TypeScript, built by esbuild; versions pinned
# in ui/package-lock.json); the built bundle is committed in server/ui/dist
# and embedded, so `make run` needs no Node.js. These targets need Node.js
# 20 and npm. `npm ci --ignore-scripts`: no package runs code when it is
# installed (esbuild and tsc find their platform binaries without it).
UI_DEPS := ui/node_modules/.package-lock.json

$(UI_DEPS): ui/package.json ui/package-lock.json
	cd ui && npm ci --ignore-scripts --no-audit --no-fund

ui: $(UI_DEPS) ## type-check and build the UI (ui/) into server/ui/dist: commit the result
	cd ui && npm run --silent typecheck && node build.mjs

# The build is reproducible byte for byte, so a difference means the
# committed bundle is not what the sources give (edited by hand, or built
# from other sources or other package versions).
ui-check: $(UI_DEPS) ## rebuild the UI into a temporary directory; fail if it differs from server/ui/dist
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	(cd ui && npm run --silent typecheck && node build.mjs "$$tmp/dist" >/dev/null) && \
	if diff -rq "$$tmp/dist" server/ui/dist; then \
		echo "ui-check: server/ui/dist is what ui/ builds"; \
	else \
		echo "ui-check: server/ui/dist differs from what ui/ builds; run 'make ui' and commit"; exit 1; \
	fi

ui-screenshot: ## run the browser test and write its screenshot of the graph to docs/ui-graph.png
	MYELIN_UI_SCREENSHOT=$(CURDIR)/docs/ui-graph.png $(GO) test -count=1 -run '^TestUIBrowser$$' -v ./cmd/myelin/

# Prometheus's PromQL test scripts (../shared/promqltest-testdata) and the
# PromQL compliance queries (../shared/promql-compliance) over HTTP, each
# run twice: straight to the query API and through the query frontend
# (split into 5-minute pieces, results cache on); the frontend must answer
# exactly as the API does. `make test` runs them too.
promql-frontend: ## PromQL scripts and compliance queries over HTTP, without and with the query frontend
	$(GO) test -count=1 -run '^(TestPromQLScriptsHTTP|TestPromQLComplianceHTTP)$$' $(TESTFLAGS) ./server/internal/promqlhttp

# The same scripts, native histograms included, with every load pushed by
# remote write (1.0, then 2.0) through the write handler into a real
# engine group, and evaluated by PromQL over it (issue 16 item 2).
promql-rw: ## PromQL scripts with native histograms, loads pushed by remote write 1.0 and 2.0
	$(GO) test -count=1 -v -run '^TestPromQLScriptsRemoteWrite$$' $(TESTFLAGS) ./server/internal/promqlhttp | grep -E 'ran [0-9]+ script parts|^(ok|FAIL|---)'

# A Grafana-like dashboard (10 range queries over 7 days at a 1m step,
# refreshed 5 times with now moving 30 s) through the query frontend: the
# first refresh against the mean of the later ones (README); a light
# tenant's p99 under another's flood; heavy queries over 50,000 series
# unsharded and in shards (docs/design.md "Query frontend").
bench-frontend: ## the query frontend's benchmarks: dashboard refreshes, sharding, fairness (~4 min)
	$(GO) test -count=1 -run '^$$' -bench '^BenchmarkFrontend(Dashboard|Fairness)$$' -benchtime 1x ./server
	$(GO) test -count=1 -run '^$$' -bench '^BenchmarkFrontendSharding$$' -benchtime 5x ./server

bench-fairness: ## issue 17's fairness goal: a light query a second, 300 alone and 300 under a heavy tenant's flood (~11 min)
	$(GO) test -count=1 -timeout 30m -run '^$$' -bench '^BenchmarkFrontendFairness/slots=on$$' -benchtime 1x ./server \
		-args -fairness.light=300 -fairness.every=1s

# 10,000 recording rules of one tenant, each over 50 series, every 15 s,
# on a single Myelin node and on Prometheus, one after the other: the
# rules' CPU per 1,000 rules per evaluation, missed iterations, and the
# recorded series compared (README "Alerting", issue 18).
# `make bench-30d`: issue 17's long-range goal. 1,000 counter series
# (100 hosts x 2 cpus x 5 modes, one scrape a minute, 30 days ending now)
# into one Myelin node by remote write and into Prometheus 3.14 as its
# compacted blocks, then `sum by (instance) (rate(...[5m]))` over the 30
# days at a 30-minute step, cold and warm, taking turns (bench/cmd/longquery).
# The load is most of the time: -work DIR keeps it, -reuse queries it again.
bench-30d: build prometheus3 ## 30-day sum by (instance) (rate(...[5m])) over 1,000 series: Myelin vs Prometheus 3 (~10 min; BENCHARGS='-reuse -work DIR' to query a loaded DIR again)
	$(GO) run ./bench/cmd/longquery $(BENCHARGS)

bench-rules: build e2e-deps ## recording rules: CPU per 1,000 rules, Myelin vs Prometheus (~12 min)
	$(GO) run ./bench/cmd/rulebench -rules $(or $(RULES),10000) $(BENCHARGS)

VETFLAGS    ?=

check: lint ## lint, then tests with -race -tags invariants
	$(MAKE) test TESTFLAGS="-race -tags invariants"

lint: ## gofmt, go vet, staticcheck, go mod tidy diff
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: not formatted:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(VETFLAGS) ./...
	$(GO) vet $(VETFLAGS) -tags invariants ./...
	$(STATICCHECK) ./...
	$(GO) mod tidy -diff
	@# compliance/remotewrite is a module of its own (make compliance-rw).
	cd compliance/remotewrite && $(GO) vet ./... && $(STATICCHECK) ./... && $(GO) mod tidy -diff
	@# tools/otelcol too (make otelcol): vet and tidy.
	cd tools/otelcol && $(GO) vet ./... && $(GO) mod tidy -diff

# `make bench`: Myelin against Prometheus on one remote-write load, plus the
# chunk-encoding and engine benchmarks; prints the table of ratios and writes
# bench/results/<date>-<commit>.md with SVG plots. About 3 minutes on 2 cores.
# SERIES and HOURS size the load; BENCHARGS adds flags of bench/cmd/compare.
SERIES      ?=
HOURS       ?=
BENCHARGS   ?=

bench: build e2e-deps ## Myelin vs Prometheus side by side: table of ratios, report and plots in bench/results
	$(GO) run ./bench/cmd/compare -series $(or $(SERIES),50000) -hours $(or $(HOURS),2) \
		-command "make bench$(if $(SERIES), SERIES=$(SERIES))$(if $(HOURS), HOURS=$(HOURS))" $(BENCHARGS)

# The same run against Prometheus 3.14 (make prometheus3) instead of
# Debian's 2.42: issue 19's goals name Prometheus 3.14.
bench-prom3: build prometheus3 ## Myelin vs Prometheus 3.14 side by side (SERIES, HOURS as for bench)
	$(GO) run ./bench/cmd/compare -prometheus bin/prometheus-3 -series $(or $(SERIES),50000) -hours $(or $(HOURS),2) -label prom3 -chunks=false -engine=false \
		-command "make bench-prom3$(if $(SERIES), SERIES=$(SERIES))$(if $(HOURS), HOURS=$(HOURS))" $(BENCHARGS)

# One large run (requests built while sending; chunk and engine benchmarks skipped).
# The same run against VictoriaMetrics instead of Prometheus (issue 19's
# goals name it): load, footprint and queries; no engine/chunk rows (those
# compare with Prometheus's libraries).
bench-vm: build victoriametrics ## Myelin vs VictoriaMetrics side by side (SERIES, HOURS as for bench)
	$(GO) run ./bench/cmd/compare -baseline victoriametrics -series $(or $(SERIES),50000) -hours $(or $(HOURS),2) -label vm \
		-command "make bench-vm$(if $(SERIES), SERIES=$(SERIES))$(if $(HOURS), HOURS=$(HOURS))" $(BENCHARGS)

bench-scale: build e2e-deps ## one large side-by-side run: SERIES=1000000 HOURS=0.25 by default (~30 min)
	$(GO) run ./bench/cmd/compare -series $(or $(SERIES),1000000) -hours $(or $(HOURS),0.25) \
		-prebuild=false -chunks=false -engine=false -label scale \
		-command "make bench-scale SERIES=$(or $(SERIES),1000000) HOURS=$(or $(HOURS),0.25)" $(BENCHARGS)

# `make bench-cluster`: one remote-write load and the query set against a plain
# single node and against clusters of NODES nodes, all on loopback (so it shows
# the overhead of replication and fan-out, not scale); prints the table of
# ratios and writes bench/results/<date>-<commit>-cluster.md. About 2 minutes
# on 2 cores. SERIES and HOURS size the load; BENCHARGS adds flags of
# bench/cmd/clusterbench.
NODES       ?= 1,3,5

.PHONY: bench-cluster
bench-cluster: build ## single node vs clusters of NODES=1,3,5 on loopback: write and query overhead (~2 min)
	$(GO) run ./bench/cmd/clusterbench -nodes $(NODES) -series $(or $(SERIES),20000) -hours $(or $(HOURS),1) \
		-command "make bench-cluster NODES=$(NODES)$(if $(SERIES), SERIES=$(SERIES))$(if $(HOURS), HOURS=$(HOURS))" $(BENCHARGS)

# `make bench-restart`: kill -9 a node loaded with the make bench load just
# before it would checkpoint, restart it, and time it until /ready and the
# first accepted write (bench/cmd/restartbench). BASELINE=path/to/myelin
# measures another binary the same way, alternating, and prints the ratios.
BASELINE    ?=
RUNS        ?= 3

.PHONY: bench-restart
bench-restart: build ## time to ready after kill -9 at the worst point, under the make bench load (~2 min per run)
	$(GO) run ./bench/cmd/restartbench -bin bin/myelin -runs $(RUNS)$(if $(BASELINE), -baseline $(BASELINE)) $(BENCHARGS)

bench-go: ## run every Go benchmark in ./bench once (smoke test; real runs use -count 10 and benchstat)
	$(GO) test -run '^$$' -bench . -benchtime 1x ./bench/...

# `make histdata`: the native-histogram data set (README, "Native histogram
# data set") from the classic histograms of the shared data; deterministic,
# a few seconds. `make bench-hist`: the histogram chunk encodings against
# Prometheus's histogram chunks on it (about 20 s).
# `make histdata-record` records native histograms from a real Prometheus 3
# (scripts/record-native-histograms.sh; PROMETHEUS=<binary>, or it builds
# v3.14; DURATION seconds, 1800 by default).
HISTDATA ?= chunkenc/testdata/histograms.hd.gz
HISTDATA_RECORDED ?= chunkenc/testdata/histograms-recorded.hd.gz

histdata: ## rebuild chunkenc/testdata/histograms.hd.gz from the shared data's classic histograms
	$(GO) run ./bench/cmd/histdata -data $(or $(MYELIN_DATA),../shared/data) -out $(HISTDATA)

histdata-record: ## record chunkenc/testdata/histograms-recorded.hd.gz from a real Prometheus 3 (~30 min)
	OUT=$(HISTDATA_RECORDED) scripts/record-native-histograms.sh

bench-hist: ## histogram chunk encodings vs Prometheus's chunks: bytes/sample and ns/sample table
	$(GO) run ./bench/cmd/histbench -data $(HISTDATA),$(HISTDATA_RECORDED) -reps 9

fuzz: ## run each fuzz target in ./fuzz for FUZZTIME
	@if [ ! -d fuzz ]; then echo "no ./fuzz directory yet"; exit 0; fi; \
	list=$$($(GO) test -list '^Fuzz' ./fuzz) || { echo "$$list"; exit 1; }; \
	targets=$$(echo "$$list" | grep '^Fuzz' || true); \
	if [ -z "$$targets" ]; then echo "no fuzz targets in ./fuzz"; exit 0; fi; \
	for t in $$targets; do \
		echo "== $$t ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./fuzz || exit 1; \
	done

# `make compliance-rw`: Prometheus's remote-write receiver compliance suite
# (github.com/prometheus/compliance, remotewrite/receiver) against bin/myelin.
# compliance/remotewrite is a Go module of its own: it fetches the suite at a
# pinned version through the Go module proxy and runs it there, with its own
# dependencies, never in Myelin's go.mod. About a minute once the suite's
# dependencies are in the module cache; fails if a MUST case fails (other
# than those needing native histograms, exemplars or metadata stored).
compliance-rw: build ## remote-write receiver compliance suite against bin/myelin; table in compliance/remotewrite/results.md
	cd compliance/remotewrite && $(GO) run . -myelin $(CURDIR)/bin/myelin -out results.md

clean: ## remove build output and test caches
	rm -rf bin
	$(GO) clean -testcache
