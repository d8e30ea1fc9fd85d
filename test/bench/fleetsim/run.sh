#!/bin/sh
# Fleet-scale figures: the no-change poll benchmarks, then the concurrent
# simulation (N hosts running the agent's real poll code against git
# http-backend and docker-registry pinned to one core). The load generator
# runs on the other core(s): FLEETSIM_SERVER_CPU (default 0) is the server's.
# Knobs: FLEETSIM_HOSTS (200), FLEETSIM_STEP_SECONDS (8),
# FLEETSIM_GIT_RATES / FLEETSIM_OCI_RATES (polls/s steps),
# FLEETSIM_STORM_INTERVAL_SECONDS (10).
set -eu
cd "$(dirname "$0")/../../.."
export GOFLAGS=-tags=containers_image_openpgp
server=${FLEETSIM_SERVER_CPU:-0}
client=$(nproc | awk -v s="$server" '{for(i=0;i<$1;i++) if(i!=s){printf "%s%d", sep, i; sep=","}}')
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); server CPU $server, clients CPU ${client:-any}"
go test -run '^$' -bench NoChangePoll -benchtime 2000x ./test/bench/fleetsim/
if [ -n "$client" ]; then pin="taskset -c $client"; else pin=""; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=$tmp/fleetsim.test
go test -c -o "$bin" ./test/bench/fleetsim/
FLEETSIM=1 $pin "$bin" -test.run 'TestSustainedPolls|TestMergeStorm' -test.v -test.timeout 30m | grep -v '^=== RUN'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
