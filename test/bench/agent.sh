#!/usr/bin/env bash
# Measures the agent's no-op pass (issue 5): the real `bootsync agent` runs
# PASSES no-op passes (interval INTERVAL) on a simulated host that already
# runs its fleet's image, once with the image digest-pinned and once with a
# tag locked in bootsync.lock, against a real git http-backend and Debian's
# docker-registry. Prints the medians of COUNT runs next to the goals and to
# baselines measured in the same runs:
#   agent CPU per pass < 20 ms, peak RSS < 40 MB, 1 Git request and
#   0 registry requests per pass.
# PROFILE=1 also runs the same pass in-process under -cpuprofile and prints
# where its CPU goes.
#
# Environment: PASSES (default 100), COUNT (default 3), INTERVAL (default 50ms),
# PROFILE (default 0). Raw output: test/bench/out/agent-bench.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOTOOLCHAIN=local
passes=${PASSES:-100}
count=${COUNT:-3}
interval=${INTERVAL:-50ms}
out=test/bench/out
mkdir -p "$out"
raw="$out/agent-bench.txt"
[ -x /usr/bin/time ] || { echo "needs GNU time (Debian package: time)" >&2; exit 1; }
[ -x /usr/bin/docker-registry ] || [ -n "${BOOTSYNC_DOCKER_REGISTRY:-}" ] || {
	echo "needs the distribution registry (Debian package: docker-registry)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -tags containers_image_openpgp -o "$work/bootsync" ./cmd/bootsync
go test -tags containers_image_openpgp -c -o "$work/agent.test" ./test/bench/agent

{
	echo "# $(go version), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
	BOOTSYNC_BENCH_BIN="$work/bootsync" BOOTSYNC_BENCH_INTERVAL="$interval" "$work/agent.test" \
		-test.run '^$' -test.bench '^BenchmarkNoopPasses$' -test.benchtime "${passes}x" \
		-test.count "$count" -test.timeout 60m
} | tee "$raw"

awk -v passes="$passes" -v count="$count" -v interval="$interval" '
function median(key,    n, i, j, t, a) {
	n = split(vals[key], a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	if (n == 0) return "-"
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
/^BenchmarkNoopPasses\// {
	v = $1; sub(/^BenchmarkNoopPasses\//, "", v); sub(/-[0-9]+$/, "", v)
	for (i = 3; i < NF; i += 2) vals[v "|" $(i + 1)] = vals[v "|" $(i + 1)] " " $i
}
function fmtv(x, f) { return (x == "-") ? "-" : sprintf(f, x) }
function row(label, unit, f, goal) {
	printf "%-44s %12s %12s   %s\n", label, fmtv(median("pinned|" unit), f), fmtv(median("locked|" unit), f), goal
}
function ratio(label, a, b,    p, l) {
	p = median("pinned|" a); l = median("locked|" a)
	printf "%-44s %12s %12s\n", label,
		(p == "-" || median("pinned|" b) + 0 == 0) ? "-" : sprintf("%.2f", p / median("pinned|" b)),
		(l == "-" || median("locked|" b) + 0 == 0) ? "-" : sprintf("%.2f", l / median("locked|" b))
}
function check(unit, op, limit,    v, k, bad) {
	for (k = 1; k <= 2; k++) {
		v = median((k == 1 ? "pinned|" : "locked|") unit)
		if (v == "-") return "missing"
		if ((op == "<" && !(v + 0 < limit)) || (op == "=" && v + 0 != limit)) bad = 1
	}
	return bad ? "MISSED" : "met"
}
END {
	print ""
	printf "no-op pass of `bootsync agent`: %d passes per run, interval %s, median of %d runs\n", passes, interval, count
	printf "%-44s %12s %12s   %s\n", "", "pinned", "locked", "goal"
	row("agent CPU per pass (own user+sys)", "agent-cpu-ms/op", "%.2f ms", "< 20 ms")
	row("bootc CPU per pass (simulator, waited for)", "bootc-cpu-ms/op", "%.2f ms", "")
	row("bootc calls per pass", "bootc-calls/op", "%.2f", "")
	row("pass wall time", "pass-wall-ms/op", "%.1f ms", "")
	row("Git requests per pass", "git-requests/op", "%.2f", "= 1")
	row("registry requests per pass", "registry-requests/op", "%.2f", "= 0")
	row("peak RSS of the agent (VmHWM)", "peak-RSS-MB", "%.1f MB", "< 40 MB")
	row("  anonymous (heap, runtime) at the end", "rss-anon-MB", "%.1f MB", "")
	row("  file-backed (executable) at the end", "rss-file-MB", "%.1f MB", "")
	row("start-up CPU (exec to first pass done)", "startup-cpu-ms", "%.0f ms", "")
	print "baselines (same runs)"
	row("  git ls-remote, CPU per call", "base-ls-remote-cpu-ms", "%.2f ms", "")
	row("  bootc status (simulator alone), CPU", "base-bootc-status-cpu-ms", "%.2f ms", "")
	row("  bootsync --help, CPU", "base-help-cpu-ms", "%.2f ms", "")
	row("  bootsync --help, peak RSS", "base-help-peak-RSS-MB", "%.1f MB", "")
	print "ratios"
	ratio("  agent CPU per pass / git ls-remote CPU", "agent-cpu-ms/op", "base-ls-remote-cpu-ms")
	ratio("  bootc CPU per pass / one bootc status", "bootc-cpu-ms/op", "base-bootc-status-cpu-ms")
	ratio("  agent peak RSS / bootsync --help peak RSS", "peak-RSS-MB", "base-help-peak-RSS-MB")
	printf "goals: CPU %s, RSS %s, Git requests %s, registry requests %s\n",
		check("agent-cpu-ms/op", "<", 20), check("peak-RSS-MB", "<", 40),
		check("git-requests/op", "=", 1), check("registry-requests/op", "=", 0)
}' "$raw" | tee "$out/agent-table.txt"

if [ "${PROFILE:-0}" != 0 ]; then
	echo
	echo "== in-process no-op pass (reconcile.Agent.Pass), CPU profile"
	"$work/agent.test" -test.run '^$' -test.bench '^BenchmarkNoopPassInProcess$/pinned' \
		-test.benchtime "$((passes * 3))x" -test.benchmem -test.cpuprofile "$out/agent-cpu.pprof" -test.timeout 30m
	# The Git server and the registry proxy run in the same process: focus
	# on the pass.
	go tool pprof -top -cum -nodecount 40 -focus 'reconcile\.\(\*Agent\)\.Pass' "$work/agent.test" "$out/agent-cpu.pprof" 2>/dev/null
fi
