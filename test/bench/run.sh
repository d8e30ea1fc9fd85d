#!/usr/bin/env bash
# Runs every performance script in test/bench. Each compares bootsync with a
# baseline measured in the same run (the git CLI, process start-up, ...).
set -euo pipefail
cd "$(dirname "$0")"
for script in diff.sh render/run.sh git.sh agent.sh budgets.sh; do
  [ -x "$script" ] || continue
  echo "== test/bench/$script"
  "./$script"
done
