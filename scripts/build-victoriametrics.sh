#!/bin/sh
# Build single-node VictoriaMetrics v1.151.0 into OUT (bin/victoria-metrics
# by default) from the Go module proxy, for `make bench-vm`, which
# measures Myelin against it (issue 19's goals name VictoriaMetrics).
# A throwaway module requires it; its zstd binding needs cgo (gcc). A
# minute or two on 2 cores; nothing is done if OUT exists.
set -eu
OUT=${OUT:-bin/victoria-metrics}
if [ -x "$OUT" ]; then
	exit 0
fi
mkdir -p "$(dirname "$OUT")"
OUT=$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cat > "$WORK/go.mod" <<'MOD'
module vmbuild

go 1.26

require github.com/VictoriaMetrics/VictoriaMetrics v1.151.0
MOD
echo "building VictoriaMetrics v1.151.0 into $OUT"
(cd "$WORK" && GOFLAGS=-mod=mod go build -o "$OUT.tmp" github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics)
mv "$OUT.tmp" "$OUT"
