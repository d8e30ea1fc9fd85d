#!/usr/bin/env bash
# Measures how the real binary meets the hostile inputs of issue 15 with its
# default limits (test/bench/budgets): wall time, peak RSS and how each case
# ended, as a Markdown table. BOOTSYNC_BIN=PATH measures another build (for
# example one from before the limits, for the before/after table in
# docs/limits.md); each case is stopped at 2 minutes or 4 GiB.
#
#   test/bench/budgets.sh
#   BOOTSYNC_BIN=/tmp/old/bootsync test/bench/budgets.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOTOOLCHAIN=local
[ -x /usr/bin/time ] || { echo "needs GNU time (Debian package: time)" >&2; exit 1; }
BOOTSYNC_BENCH_BUDGETS=1 go test -count 1 -timeout 90m -v ./test/bench/budgets | sed -n '/^| case/,/^$/p'
