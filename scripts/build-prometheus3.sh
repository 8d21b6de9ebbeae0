#!/bin/sh
# Build a real Prometheus 3 (v3.14, Go module v0.314.0) into OUT
# (bin/prometheus-3 by default) from the Go module proxy, for the
# end-to-end test that has it remote-write native histograms with
# Remote-Write 2.0 (cmd/myelin, TestE2EPrometheus3NativeHistograms).
# Debian's prometheus is 2.42: no 2.0 sender. `go install` refuses the
# module (its go.mod has replace directives), so a throwaway module
# requires it with the one replace Prometheus's own go.mod needs. A few
# minutes on 2 cores; nothing is done if OUT exists.
set -eu
OUT=${OUT:-bin/prometheus-3}
if [ -x "$OUT" ]; then
	exit 0
fi
mkdir -p "$(dirname "$OUT")"
OUT=$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cat > "$WORK/go.mod" <<'MOD'
module prombuild

go 1.25

require github.com/prometheus/prometheus v0.314.0

// Prometheus's own go.mod pins this module family in a replace; without
// it the build mixes incompatible cloud.google.com/go versions.
replace cloud.google.com/go => cloud.google.com/go v0.123.0
MOD
echo "building Prometheus v3.14 (module v0.314.0) into $OUT"
(cd "$WORK" && GOFLAGS=-mod=mod go build -o "$OUT.tmp" \
	-ldflags "-X github.com/prometheus/common/version.Version=3.14.0 -X github.com/prometheus/common/version.Revision=module-v0.314.0 -X github.com/prometheus/common/version.Branch=module-proxy" \
	github.com/prometheus/prometheus/cmd/prometheus)
mv "$OUT.tmp" "$OUT"
