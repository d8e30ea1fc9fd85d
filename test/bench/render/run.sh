#!/bin/sh
# Runs the hostspec render benchmarks on one core and keeps the output in
# test/bench/out/ (git-ignored). Usage: test/bench/render/run.sh [count]
set -eu
cd "$(dirname "$0")/../../.."
count=${1:-3}
out=test/bench/out
mkdir -p "$out"
file="$out/render-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
	echo "# $(go version) on $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
	GOTOOLCHAIN=local go test -run '^$' -bench 'ResolveAll|Load' -benchmem -cpu 1 -count "$count" ./hostspec
	GOTOOLCHAIN=local go test -run '^$' -bench . -benchmem -cpu 1 -count "$count" ./test/bench/render
} | tee "$file"
echo "wrote $file"
