#!/usr/bin/env bash
# Times `bootsync diff` (the real binary) between two commits of a generated
# fleet with 50 groups, where one group's image changed: wall time and peak
# RSS (GNU time), for each size given (default: 1000 10000 100000), so the
# growth can be read off. Goal at 10,000 hosts: under 3 s and 500 MB.
#
#   test/bench/diff.sh [HOSTS...]
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOTOOLCHAIN=local
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000 100000)
[ -x /usr/bin/time ] || { echo "needs GNU time (Debian package: time)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -tags containers_image_openpgp -o "$work/bootsync" ./cmd/bootsync
gitc() { git -C "$1" -c gc.auto=0 -c user.name=bench -c user.email=bench@example.com "${@:2}"; }

echo "# $(go version), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %-10s %-10s %-12s %s\n' hosts wall_s rss_mb hosts_per_s changed
for n in "${sizes[@]}"; do
  dir="$work/fleet-$n"
  go run ./test/bench/genfleet -hosts "$n" -groups 50 -out "$dir" -git >/dev/null
  group=$(grep -l '^  image: ' "$dir"/groups/*.yaml | head -n1)
  sed -i 's/^\(  image: .*\)$/\1-next/' "$group"
  gitc "$dir" commit -q -a -m "bump $(basename "$group")"
  best=""
  for _ in 1 2 3; do
    /usr/bin/time -f '%e %M' -o "$work/time" "$work/bootsync" diff --repo "$dir" --base HEAD~1 --head HEAD -o json >"$work/out.json"
    read -r wall rss <"$work/time"
    if [ -z "$best" ] || awk "BEGIN{exit !($wall < $best)}"; then best=$wall; bestrss=$rss; fi
  done
  changed=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["changed"])' "$work/out.json")
  printf '%-8s %-10s %-10s %-12s %s\n' "$n" "$best" "$((bestrss / 1024))" "$(awk "BEGIN{printf \"%d\", $n/$best}")" "$changed"
  rm -rf "$dir"
done
