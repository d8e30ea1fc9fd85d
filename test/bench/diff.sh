#!/usr/bin/env bash
# Times `bootsync diff` (the real binary) between two commits of a generated
# fleet with 50 groups: wall time and peak RSS (GNU time), for each size
# given (default: 1000 10000 100000), and for three pull requests:
#   host   one host file changes (a var of its NetworkManager keyfile)
#   group  one group selecting hosts by name glob changes its /etc file
#          (about 2 % of the hosts)
#   labels one group selecting hosts by a label (site) adds an /etc file
#          (the hosts of one site); the label is in every host file, so
#          every host file is read
#   fleet  fleet.yaml changes (every host)
# each with the incremental diff (the default) and --full.
# Goals at 100,000 hosts: host and group under 3 s and 500 MB, fleet under
# 20 s and 1.5 GB.
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

# run DIR LABEL FLAGS...: one diff of HEAD~1..HEAD.
run() {
  local dir=$1 label=$2 best="" bestrss=""
  shift 2
  for _ in 1; do
    /usr/bin/time -f '%e %M' -o "$work/time" "$work/bootsync" diff --repo "$dir" --base HEAD~1 --head HEAD -o json "$@" >"$work/out.json"
    read -r wall rss <"$work/time"
    if [ -z "$best" ] || awk "BEGIN{exit !($wall < $best)}"; then best=$wall; bestrss=$rss; fi
  done
  changed=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["changed"])' "$work/out.json")
  printf '%-8s %-7s %-12s %-10s %-10s %s\n' "$n" "$label" "${*:-incremental}" "$best" "$((bestrss / 1024))" "$changed"
}

echo "# $(go version), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %-7s %-12s %-10s %-10s %s\n' hosts change mode wall_s rss_mb changed_hosts
for n in "${sizes[@]}"; do
  dir="$work/fleet-$n"
  go run ./test/bench/genfleet -hosts "$n" -groups 50 -out "$dir" -git >/dev/null

  hostfiles=("$dir"/hosts/*.yaml)
  host=$(basename "${hostfiles[0]}")
  sed -i 's/^\(    gateway: .*\)$/\1\n    mtu: 9000/' "$dir/hosts/$host"
  sed -i 's/^\(    ip: [0-9.]*\)$/\1/; s/10\.0\.0\.1$/10.0.0.254/' "$dir/hosts/$host"
  gitc "$dir" commit -q -a -m "edit $host"
  run "$dir" host
  run "$dir" host --full

  groupfiles=($(grep -l '^selector: {hosts:' "$dir"/groups/*.yaml))
  group=${groupfiles[0]}
  sed -i 's/content: "group \(.*\)\\n"/content: "group \1 (edited)\\n"/' "$group"
  gitc "$dir" commit -q -a -m "edit $(basename "$group")"
  run "$dir" group

  labelgroup=$(grep -l '^selector: {labels: {site:' "$dir"/groups/*.yaml | head -1)
  sed -i 's|^  etc:$|  etc:\n    - {path: /etc/bench-site.conf, content: "site\\n"}|' "$labelgroup"
  gitc "$dir" commit -q -a -m "edit $(basename "$labelgroup")"
  run "$dir" labels

  sed -i "s/content: \"Welcome to /content: \"Hello from /" "$dir/fleet.yaml"
  gitc "$dir" commit -q -a -m "edit fleet.yaml"
  run "$dir" fleet
  run "$dir" fleet --full
  echo "# load after $n: $(cut -d' ' -f1-3 /proc/loadavg)"
  rm -rf "$dir"
done
