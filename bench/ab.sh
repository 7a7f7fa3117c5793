#!/bin/bash
# bench/ab.sh: two mqd binaries, the same workloads, run after run.
#
#   bench/ab.sh [--rounds N] OLD_MQD NEW_MQD
#
# Starts both binaries side by side on free loopback ports (default
# configuration: one worker per CPU) and runs mq-bench's workloads a
# (pair, acknowledged), d (fan-out to 50) and e (10,000 queues) of
# bench/compare.sh against them alternately, N rounds (default 5), so that
# a noisy neighbour hurts both alike.  Prints every run's delivered
# messages per second, then the mean of each and NEW/OLD.  Exits 1 if
# mq-bench reports any loss, duplicate or damage.  Used to show that a
# change costs no speed (doc/PERFORMANCE.md).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

rounds=5
while [ $# -gt 2 ]; do
	case "$1" in
	--rounds) rounds=$2; shift 2 ;;
	*) break ;;
	esac
done
if [ $# -ne 2 ]; then
	sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
fi
MQ_BENCH=${MQ_BENCH:-src/mq-bench}
for b in "$1" "$2" "$MQ_BENCH"; do
	[ -x "$b" ] || { echo "ab.sh: $b is not an executable" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "ab.sh: needs jq (apt-get install jq)" >&2; exit 2; }

dir=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT


start() { # NAME BINARY: sets port_NAME
	local port pid
	port=$(free_port)
	printf '[server]\nlisten = 127.0.0.1:%s\ncontrol_socket = %s/%s.sock\n' \
		"$port" "$dir" "$1" >"$dir/$1.conf"
	"$2" -c "$dir/$1.conf" >"$dir/$1.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	if ! wait_listening "$port" "$pid"; then
		cat "$dir/$1.log" >&2
		echo "ab.sh: $2 is not listening on $port" >&2
		exit 1
	fi
	eval "port_$1=$port"
}

start old "$1"
start new "$2"

workloads=(
	"a:-m pair -n 400000 -z 100 -w 64 --prefetch 128"
	"d:-m fanout -c 50 -n 40000 -z 100 -w 64 --lag 2000"
	"e:-m pair -q 10000 -n 400000 -z 100 -w 64 --prefetch 128"
)
bad=0
for wl in "${workloads[@]}"; do
	name=${wl%%:*}
	args=${wl#*:}
	for r in $(seq 1 "$rounds"); do
		for v in old new; do
			eval "port=\$port_$v"
			# shellcheck disable=SC2086
			json=$("$MQ_BENCH" -S mqd -s "127.0.0.1:$port" $args \
				--prefix "ab$r$v$name" --json --timeout 30s 2>>"$dir/mq-bench.err") || true
			if [ "$(jq -r .ok <<<"$json" 2>/dev/null)" != true ]; then
				echo "ab.sh: $v failed in workload $name, round $r" >&2
				bad=1
			fi
			echo "$name $v $r $(jq -r '.received_per_s | floor' <<<"$json" 2>/dev/null || echo 0)" |
				tee -a "$dir/runs.txt"
		done
	done
done
awk '{ s[$1 " " $2] += $4; n[$1 " " $2]++ }
END {
	printf "\n%-9s %12s %12s %8s\n", "workload", "old /s", "new /s", "new/old"
	for (w = 1; w <= 3; w++) {
		k = substr("ade", w, 1)
		o = s[k " old"] / n[k " old"]; m = s[k " new"] / n[k " new"]
		printf "%-9s %12d %12d %7.2fx\n", k, o, m, o ? m / o : 0
	}
}' "$dir/runs.txt"
grep -q . "$dir/mq-bench.err" 2>/dev/null && bad=1
exit "$bad"
