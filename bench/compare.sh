#!/bin/bash
# bench/compare.sh: mqd side by side with Redis, NATS and beanstalkd.
#
#   bench/compare.sh [--runs N] [--quick] [--out DIR] [--only a,b,...]
#                    [--mqd-workers N]
#
# Installs what is missing (apt, as root), builds mq-bench and mqd if they
# are not built, starts redis-server (no persistence), nats-server,
# beanstalkd and mqd on 127.0.0.1 on free ports, and runs the same
# workloads against each with mq-bench, which speaks every system's own
# protocol, so the client is the same for all:
#
#   a  pair, 100 B, window 64 (mqd acknowledges every message)
#   b  one message in flight end to end (--lag 1), 100 B: latency
#   c  produce only, 1 KiB, window 64 (drained and checked afterwards)
#   d  fan-out: 1 publisher, 50 subscribers, 100 B
#   e  10,000 queues, traffic spread over them, 100 B, window 64
#
# Runs are interleaved (run 1 of every workload on every system, then run
# 2, ...) so that a noisy neighbour hurts all systems alike; the table
# shows medians and the ratio of mqd to each.  It then measures mqd's
# memory: what an empty queue, an idle connection and a queued 100-byte
# message cost.  Every server is stopped by its PID on exit.
#
# mqd runs with its default configuration (one worker per CPU) unless
# --mqd-workers says otherwise.  MQ_BENCH and MQD name other binaries; the
# raw results (JSON lines) are kept in --out (default: a temporary
# directory, printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

runs=3
quick=0
only="a,b,c,d,e,mem"
out=""
mqd_workers=""
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) runs=$2; shift 2 ;;
	--quick) quick=1; shift ;;
	--out) out=$2; shift 2 ;;
	--only) only=$2; shift 2 ;;
	--mqd-workers) mqd_workers=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
case "$runs" in '' | *[!0-9]* | 0) echo "compare.sh: --runs wants a positive number" >&2; exit 2 ;; esac

# ---- what it needs -----------------------------------------------------
PKGS="redis-server nats-server beanstalkd jq iproute2"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "compare.sh: missing packages:$missing (run as root, or apt-get install them)" >&2
		exit 1
	fi
	echo "compare.sh: installing:$missing"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
# The Debian packages start their own daemons: this script starts its own
# on free ports and leaves those alone.

MQ_BENCH=${MQ_BENCH:-src/mq-bench}
MQD=${MQD:-src/mqd}
if [ ! -x "$MQ_BENCH" ] || [ ! -x "$MQD" ]; then
	echo "compare.sh: building mqd and mq-bench"
	[ -x configure ] || ./autogen.sh
	[ -f Makefile ] || ./configure >/dev/null
	make -j"$(nproc)" >/dev/null
fi

if [ -z "$out" ]; then
	out=$(mktemp -d /tmp/mqd-compare.XXXXXX)
fi
mkdir -p "$out"
results="$out/results.jsonl"
: >"$results"

pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The memory check holds 2,000 connections: mq-bench and mqd need the fds.
ulimit -n 8192 2>/dev/null || true


wait_port() { # PORT PID NAME
	local rc=0
	wait_listening "$1" "$2" || rc=$?
	case $rc in
	0) return 0 ;;
	1)
		echo "compare.sh: $3 exited at start; its log:" >&2
		cat "$out/$3.log" >&2
		;;
	*) echo "compare.sh: $3 is not listening on $1" >&2 ;;
	esac
	exit 1
}

declare -A port pid_of
start_servers() {
	port[mqd]=$(free_port)
	cat >"$out/mqd.conf" <<EOF
[server]
listen = 127.0.0.1:${port[mqd]}
control_socket = $out/mqd.sock
log_level = warn
EOF
	[ -n "$mqd_workers" ] && echo "workers = $mqd_workers" >>"$out/mqd.conf"
	"$MQD" -c "$out/mqd.conf" >"$out/mqd.log" 2>&1 &
	pid_of[mqd]=$!
	pids+=("$!")
	wait_port "${port[mqd]}" "${pid_of[mqd]}" mqd

	port[redis]=$(free_port)
	redis-server --port "${port[redis]}" --bind 127.0.0.1 --save '' \
		--appendonly no --daemonize no --protected-mode no \
		>"$out/redis.log" 2>&1 &
	pid_of[redis]=$!
	pids+=("$!")
	wait_port "${port[redis]}" "${pid_of[redis]}" redis

	port[nats]=$(free_port)
	nats-server -a 127.0.0.1 -p "${port[nats]}" >"$out/nats.log" 2>&1 &
	pid_of[nats]=$!
	pids+=("$!")
	wait_port "${port[nats]}" "${pid_of[nats]}" nats

	port[beanstalkd]=$(free_port)
	beanstalkd -l 127.0.0.1 -p "${port[beanstalkd]}" >"$out/beanstalkd.log" 2>&1 &
	pid_of[beanstalkd]=$!
	pids+=("$!")
	wait_port "${port[beanstalkd]}" "${pid_of[beanstalkd]}" beanstalkd
}

# ---- the workloads ------------------------------------------------------
# Messages per producer.  beanstalkd is one to two orders of magnitude
# slower, so it gets a tenth (a run still lasts seconds): rates compare,
# not totals.
scale=1
[ "$quick" = 1 ] && scale=5
count() { # WORKLOAD SYSTEM
	local n
	case "$1" in
	a) n=1000000 ;;
	b) n=20000 ;;
	c) n=200000 ;;
	d) n=40000 ;;
	e) n=500000 ;;
	esac
	[ "$2" = beanstalkd ] && n=$((n / 10))
	[ "$2" = beanstalkd ] && [ "$1" = e ] && n=$((n / 5))
	echo $((n / scale))
}
systems="mqd redis nats beanstalkd"

# The mq-bench options of workload W (the same for every system but -n).
wl_args() { # WORKLOAD SYSTEM
	local n
	n=$(count "$1" "$2")
	case "$1" in
	a) echo "-m pair -n $n -z 100 -w 64 --prefetch 128" ;;
	b) echo "-m pair -n $n -z 100 -w 1 --lag 1 --prefetch 1" ;;
	c) echo "-m produce -n $n -z 1K -w 64" ;;
	d) echo "-m fanout -c 50 -n $n -z 100 -w 64 --lag 2000" ;;
	e) echo "-m pair -q 10000 -n $n -z 100 -w 64 --prefetch 128" ;;
	esac
}

wl_title() {
	case "$1" in
	a) echo "a pair 100 B, window 64" ;;
	b) echo "b one in flight, 100 B" ;;
	c) echo "c produce 1 KiB, window 64" ;;
	d) echo "d fan-out to 50" ;;
	e) echo "e 10,000 queues" ;;
	esac
}

supported() { # SYSTEM WORKLOAD
	[ "$1" = beanstalkd ] && [ "$2" = d ] && return 1
	[ "$1" = nats ] && [ "$2" = c ] && return 1 # core NATS stores nothing
	return 0
}

run_one() { # RUN WORKLOAD SYSTEM
	local run=$1 w=$2 sys=$3 prefix="cmp${1}${2}" args json rc
	args=$(wl_args "$w" "$sys")
	echo "  run $run  $(wl_title "$w")  $sys" >&2
	set +e
	json=$("$MQ_BENCH" -S "$sys" -s "127.0.0.1:${port[$sys]}" $args \
		--prefix "$prefix" --json --timeout 20s 2>>"$out/mq-bench.err")
	rc=$?
	set -e
	if [ -z "$json" ]; then
		json='{"ok":false}'
	fi
	jq -c --arg w "$w" --arg sys "$sys" --argjson run "$run" --argjson rc "$rc" \
		'. + {workload: $w, target: $sys, run: $run, exit: $rc}' <<<"$json" >>"$results"
	if [ "$w" = c ] && [ "$rc" = 0 ]; then
		# Drain what the produce run left, checking every body.
		"$MQ_BENCH" -S "$sys" -s "127.0.0.1:${port[$sys]}" -m consume \
			-n "$(count c "$sys")" -z 1K --prefix "$prefix" --json --timeout 20s \
			>"$out/drain-$sys-$run.json" 2>>"$out/mq-bench.err" ||
			echo "compare.sh: draining $sys after run $run failed" >&2
	fi
}

echo "compare.sh: results in $out" >&2
start_servers
for run in $(seq 1 "$runs"); do
	for w in a b c d e; do
		case ",$only," in *",$w,"*) ;; *) continue ;; esac
		for sys in $systems; do
			supported "$sys" "$w" || continue
			run_one "$run" "$w" "$sys"
		done
	done
done

# ---- the table ------------------------------------------------------------
median() { # numbers on stdin -> median (empty when none)
	sort -g | awk '{a[NR]=$1} END {if (NR) print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}

metric() { # WORKLOAD SYSTEM JQ-EXPR -> median over ok runs
	jq -r --arg w "$1" --arg s "$2" \
		"select(.workload==\$w and .target==\$s and .ok==true) | $3" "$results" | median
}

failures() { # WORKLOAD SYSTEM -> runs that failed
	jq -r --arg w "$1" --arg s "$2" \
		'select(.workload==$w and .target==$s and .ok!=true) | .run' "$results" | wc -l
}

fmt() { # value unit
	if [ -z "$1" ]; then printf '%s' "-"; else printf "%.0f%s" "$1" "$2"; fi
}

ratio() { # mqd other [lower-is-better]
	if [ -z "$1" ] || [ -z "$2" ] || [ "$2" = 0 ] || [ "$1" = 0 ]; then
		printf '%s' "-"
	elif [ "${3:-}" = lower ]; then
		awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", b / a}'
	else
		awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'
	fi
}

table() {
	local w sys expr unit lower v
	printf '\n%-28s %-9s' "workload" "metric"
	for sys in $systems; do printf ' %13s' "$sys"; done
	for sys in redis nats beanstalkd; do printf ' %9s' "vs $sys"; done
	printf '\n'
	for row in "a:msgs/s:.received_per_s" "b:p50 us:.latency_us.p50:lower" \
		"b:p99 us:.latency_us.p99:lower" "c:msgs/s:.sent_per_s" \
		"d:deliv/s:.received_per_s" "e:msgs/s:.received_per_s"; do
		IFS=: read -r w unit expr lower <<<"$row"
		case ",$only," in *",$w,"*) ;; *) continue ;; esac
		declare -A val=()
		printf '%-28s %-9s' "$(wl_title "$w")" "$unit"
		for sys in $systems; do
			if ! supported "$sys" "$w"; then
				val[$sys]=""
				printf ' %13s' "n/a"
				continue
			fi
			v=$(metric "$w" "$sys" "$expr")
			val[$sys]=$v
			local f
			f=$(failures "$w" "$sys")
			if [ "$f" != 0 ]; then
				printf ' %13s' "$(fmt "$v" "")(${f}F)"
			else
				printf ' %13s' "$(fmt "$v" "")"
			fi
		done
		for sys in redis nats beanstalkd; do
			printf ' %9s' "$(ratio "${val[mqd]}" "${val[$sys]}" "${lower:-}")"
		done
		printf '\n'
		unset val
	done
	printf '\nMedians of %s run(s); "vs X" is mqd relative to X (above 1.00x: mqd is\n' "$runs"
	printf 'better; for latency the ratio is X / mqd).  (nF): n runs failed (see %s).\n' "$out/mq-bench.err"
}

# ---- the targets of issue 6 ---------------------------------------------------
verdict() { # AWK-CONDITION -> met / MISSED
	if awk "BEGIN {exit !($1)}" 2>/dev/null; then echo "met"; else echo "MISSED"; fi
}

targets() {
	local a_m a_r a_n b50_m b50_r b99_m b99_r c_m c_r d_m e_m
	a_m=$(metric a mqd .received_per_s); a_r=$(metric a redis .received_per_s)
	a_n=$(metric a nats .received_per_s)
	b50_m=$(metric b mqd .latency_us.p50); b50_r=$(metric b redis .latency_us.p50)
	b99_m=$(metric b mqd .latency_us.p99); b99_r=$(metric b redis .latency_us.p99)
	c_m=$(metric c mqd .sent_per_s); c_r=$(metric c redis .sent_per_s)
	d_m=$(metric d mqd .received_per_s); e_m=$(metric e mqd .received_per_s)
	printf '\nTargets (issue 6)\n'
	case ",$only," in *",a,"*)
		printf '  a  mqd >= 2.0x Redis:  %-8s %s\n' "$(ratio "$a_m" "$a_r")" "$(verdict "${a_m:-0} >= 2 * ${a_r:-1}")"
		printf '  a  mqd >= 1.0x NATS:   %-8s %s\n' "$(ratio "$a_m" "$a_n")" "$(verdict "${a_m:-0} >= ${a_n:-1}")" ;;
	esac
	case ",$only," in *",b,"*)
		printf '  b  p50 <= Redis:       %-8s %s\n' "$(fmt "$b50_m" " us")" "$(verdict "${b50_m:-1e9} <= ${b50_r:-0}")"
		printf '  b  p99 <= Redis:       %-8s %s\n' "$(fmt "$b99_m" " us")" "$(verdict "${b99_m:-1e9} <= ${b99_r:-0}")" ;;
	esac
	case ",$only," in *",c,"*)
		printf '  c  mqd >= 1.5x Redis:  %-8s %s\n' "$(ratio "$c_m" "$c_r")" "$(verdict "${c_m:-0} >= 1.5 * ${c_r:-1}")" ;;
	esac
	case ",$only," in *",d,"*)
		printf '  d  >= 1,000,000/s:     %-8s %s\n' "$(fmt "$d_m" "")" "$(verdict "${d_m:-0} >= 1000000")" ;;
	esac
	case ",$only," in *",a,"*) case ",$only," in *",e,"*)
		printf '  e  >= 90%% of (a):      %-8s %s\n' "$(ratio "$e_m" "$a_m")" "$(verdict "${e_m:-0} >= 0.9 * ${a_m:-1}")" ;;
	esac ;; esac
}

# ---- mqd's memory ---------------------------------------------------------
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

memory() {
	local p pid before after n conns_port
	# A fresh mqd for each measurement, so one does not feed the next.
	fresh_mqd() {
		p=$(free_port)
		cat >"$out/mem.conf" <<EOF
[server]
listen = 127.0.0.1:$p
control_socket = $out/mem.sock
log_level = warn
max_connections = 20000
EOF
		"$MQD" -c "$out/mem.conf" >>"$out/mem.log" 2>&1 &
		pid=$!
		pids+=("$pid")
		wait_port "$p" "$pid" mem
		sleep 0.5
	}
	stop_mqd() { kill "$pid"; wait "$pid" 2>/dev/null || true; }

	fresh_mqd
	before=$(rss_kb "$pid")
	"$MQ_BENCH" -s "127.0.0.1:$p" -m produce -q 10000 -n 0 --declare \
		--prefix empty -Q >/dev/null
	sleep 0.5
	after=$(rss_kb "$pid")
	q_bytes=$(( (after - before) * 1024 / 10000 ))
	stop_mqd

	fresh_mqd
	before=$(rss_kb "$pid")
	n=2000
	"$MQ_BENCH" -s "127.0.0.1:$p" -m connect -c $n --duration 30s -Q >/dev/null &
	local bench=$!
	for _ in $(seq 1 200); do
		[ "$(ss -Htn state established "sport = :$p" | wc -l)" -ge $n ] && break
		sleep 0.1
	done
	sleep 1
	after=$(rss_kb "$pid")
	kill -INT "$bench" 2>/dev/null || true
	wait "$bench" 2>/dev/null || true
	c_bytes=$(( (after - before) * 1024 / n ))
	stop_mqd

	fresh_mqd
	before=$(rss_kb "$pid")
	n=1000000
	"$MQ_BENCH" -s "127.0.0.1:$p" -m produce -n $n -z 100 --prefix mem -Q >/dev/null
	after=$(rss_kb "$pid")
	m_mb=$(( (after - before) / 1024 ))
	m_over=$(( (after - before) * 1024 / n - 100 ))
	stop_mqd

	printf '\nmqd memory (RSS growth)                     measured      target\n'
	printf '  empty queue (10,000 declared)          %8d B    <= 1024 B\n' "$q_bytes"
	printf '  idle connection (2,000 after HELLO)    %8d B    <= 8192 B\n' "$c_bytes"
	printf '  1,000,000 queued 100 B messages        %8d MB   <= 164 MB (%d B overhead each)\n' "$m_mb" "$m_over"
	printf '  verdicts: queue %s, connection %s, messages %s\n' \
		"$(verdict "$q_bytes <= 1024")" "$(verdict "$c_bytes <= 8192")" "$(verdict "$m_mb <= 164")"
}

{
	echo "mqd compare: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r)"
	echo "  mqd workers: ${mqd_workers:-default (one per CPU)}"
	echo "  mqd $("$MQD" -V 2>&1 | head -n 1 | awk '{print $NF}'), $(redis-server --version | awk '{print $1, $2, $3}'),"
	echo "  nats-server $(nats-server --version 2>&1 | awk '{print $NF}'), beanstalkd $(beanstalkd -v 2>&1 | awk '{print $NF}')"
	table
	targets
	case ",$only," in *",mem,"*) memory ;; esac
} | tee "$out/table.txt"
echo "compare.sh: raw results in $results" >&2
# A message mqd lost, duplicated or damaged is a bug, not a slow run.
bad=$(jq -r 'select(.target=="mqd" and .ok!=true) | .workload' "$results" | sort -u | tr '\n' ' ')
if [ -n "$bad" ]; then
	echo "compare.sh: mqd runs failed in workload(s): $bad(see $out/mq-bench.err)" >&2
	exit 1
fi
