#!/usr/bin/env bash
# Benchmarks gitsource (go-git) against the git CLI on the same local
# smart-HTTP server (git http-backend), in one run, and prints the ratios:
#   (a) poll with no change  vs git ls-remote
#   (b) fetch of 1 new commit into a 10,000-commit / 20,000-file repository vs git fetch
#   (c) first clone (depth 1) vs git clone --depth 1, and its peak RSS
# Goal: each time ratio <= 1.5, RSS ratio <= 2.
# The repository is generated once (git fast-import) under test/bench/out/.
# Environment: COUNT (runs per benchmark, default 3), BENCHTIME (default 5x),
# BENCH (benchmark regexp, default all).
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOTOOLCHAIN=local
out=test/bench/out
mkdir -p "$out"
raw="$out/git-bench.txt"
go test -run '^$' -bench "${BENCH:-.}" -benchtime "${BENCHTIME:-5x}" -count "${COUNT:-3}" -timeout 60m \
	./test/bench/gitbench/ | tee "$raw"

awk '
function median(key,    n, i, j, t, a) {
	n = split(vals[key], a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	if (n == 0) return 0
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	for (i = 3; i < NF; i++) {
		unit = $(i + 1)
		if (unit == "ns/op" || unit == "peak-RSS-MB" || unit == "requests/op")
			vals[name "|" unit] = vals[name "|" unit] " " $i
	}
}
function row(label, a, b, unit, scale, suffix,    x, y) {
	x = median(a "|" unit); y = median(b "|" unit)
	if (x == 0 || y == 0) { printf "%-44s (missing)\n", label; return }
	printf "%-44s go-git %9.1f%s   git %9.1f%s   ratio %5.2f\n", label, x / scale, suffix, y / scale, suffix, x / y
}
END {
	print ""
	print "ratios go-git / git CLI (medians; goal: time <= 1.5, RSS <= 2):"
	row("(a) no-change poll vs git ls-remote", "BenchmarkNoChangePoll/gogit", "BenchmarkNoChangePoll/gitcli", "ns/op", 1e6, "ms")
	row("    requests per poll", "BenchmarkNoChangePoll/gogit", "BenchmarkNoChangePoll/gitcli", "requests/op", 1, "  ")
	row("(b) fetch 1 commit vs git fetch", "BenchmarkFetchOneCommit/gogit", "BenchmarkFetchOneCommit/gitcli", "ns/op", 1e6, "ms")
	row("(c) first clone vs git clone --depth 1", "BenchmarkFirstClone/gogit", "BenchmarkFirstClone/gitcli", "ns/op", 1e6, "ms")
	row("    peak RSS of the first clone", "BenchmarkFirstClone/gogit", "BenchmarkFirstClone/gitcli", "peak-RSS-MB", 1, "MB")
	row("    full clone vs git clone", "BenchmarkFirstClone/gogit-full", "BenchmarkFirstClone/gitcli-full", "ns/op", 1e6, "ms")
	row("    peak RSS of the full clone", "BenchmarkFirstClone/gogit-full", "BenchmarkFirstClone/gitcli-full", "peak-RSS-MB", 1, "MB")
}' "$raw" | tee "$out/git-ratios.txt"
