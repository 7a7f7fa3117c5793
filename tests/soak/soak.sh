#!/bin/bash
# tests/soak/soak.sh: mixed load against one mqd for ten minutes, watching
# its memory, descriptors and CPU (issue 11).  Run it with "make soak".
#
#   SOAK_SECONDS=600  how long the load runs (at least 30)
#   SOAK_OUT=DIR      where the CSV, the plot, the summary and every log go
#                     (default: a new /tmp/mqd-soak.XXXXXX, printed)
#   MQD MQ MQCTL MQ_BENCH SOAK_WORKER   the binaries (make soak sets them)
#
# One mqd (default configuration but for the paths and the queues below)
# gets, all at once and for the whole time:
#
#   pair      mq-bench -m pair, 2 producers, 2 acknowledging consumers,
#             4 queues, 512 B, at most 5,000 in flight: 40,000 messages
#             a run, a run every 2 s
#   fanout    mq-bench -m fanout, 1 publisher, 8 subscribers, 5,000 a run
#   request   mq-bench -m request, 2 requesters, 2 responders, 4,000 a run
#   connect   mq-bench -m connect: 100 connections held 3 s, then closed
#   worker    soak-worker: ACKs, NACKs with and without delay, rejections
#             into a dead-letter queue, delayed messages, a consumer that
#             drops its connection while holding messages, and a victim
#             connection that the admin loop kills (mqctl kill)
#   cli       mq send + mq get, mq request against mq serve, each its own
#             connection, once a second
#   admin     mqctl stats, queues, connections, queue, config, version,
#             declare / send / purge / delete of a scratch queue, loglevel,
#             every 3 s; mqctl kill of the victim every 20 s
#   reload    every 60 s the config changes (max_connections and two
#             queues' ack_timeout) and mqd re-reads it, by mqctl reload
#             and SIGHUP in turn; each reload must be logged as applied
#
# Every mq-bench run checks every body (loss, duplicates, damage: exit 1),
# and so does soak-worker; mq get and mq request compare what comes back.
#
# A sampler reads /proc/PID of mqd once a second into soak.csv: RSS,
# open descriptors, CPU (percent of one CPU) and threads.  The soak fails
# when any load reports an error, when messages are left in the checked
# queues, when mqd dies or does not exit 0 on SIGTERM, or when the average
# RSS or descriptor count of the last minute is more than 10% above that
# of the second minute (the first is warm-up; for runs shorter than three
# minutes, thirds of the run stand in for minutes).  gnuplot draws
# soak.png from the CSV; summary.txt has the figures.
#
# Once a minute gdb makes mqd call glibc's malloc_stats() (a pause of a
# few milliseconds) into heap.csv, which tells the memory in use by
# allocations from the memory the allocator's arenas keep: RSS can grow
# with the peaks of the load, arenas keeping their high water, while
# nothing leaks.  It is reported, not judged.
#
# Installs what it needs (gnuplot-nox, jq, iproute2, gdb; apt, as root).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/bench/lib.sh" # free_port
MQD=${MQD:-$top/src/mqd}
MQ=${MQ:-$top/src/mq}
MQCTL=${MQCTL:-$top/src/mqctl}
MQ_BENCH=${MQ_BENCH:-$top/src/mq-bench}
SOAK_WORKER=${SOAK_WORKER:-$top/tests/soak/soak-worker}
duration=${SOAK_SECONDS:-600}
case "$duration" in '' | *[!0-9]*) echo "soak: SOAK_SECONDS must be a number of seconds" >&2; exit 2 ;; esac
if [ "$duration" -lt 30 ]; then
	echo "soak: SOAK_SECONDS must be at least 30" >&2
	exit 2
fi
for b in "$MQD" "$MQ" "$MQCTL" "$MQ_BENCH" "$SOAK_WORKER"; do
	[ -x "$b" ] || { echo "soak: $b is not built (run make soak)" >&2; exit 2; }
done

# ---- what it needs -------------------------------------------------------
PKGS="gnuplot-nox jq iproute2 gdb"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "soak: missing packages:$missing (run as root, or apt-get install them)" >&2
		exit 1
	fi
	echo "soak: installing:$missing"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

out=${SOAK_OUT:-$(mktemp -d /tmp/mqd-soak.XXXXXX)}
mkdir -p "$out"
rm -f "$out"/*.out "$out"/*.jsonl "$out"/failures "$out"/reloads \
	"$out"/soak.csv "$out"/soak.png "$out"/summary.txt "$out"/*.count \
	"$out"/stop-sampler "$out"/*.err "$out"/victim-kills
: >"$out/failures"
: >"$out/reloads"
: >"$out/victim-kills"

ulimit -n 4096 2>/dev/null || true


port=$(free_port)
addr=127.0.0.1:$port
sock=$out/mqd.sock
conf=$out/mqd.conf
# The values a reload flips between: generation 0 and 1.
write_conf() { # GENERATION
	local g=$1
	cat >"$conf.tmp" <<EOF
[server]
listen = $addr
control_socket = $sock
log_file = $out/mqd.log
log_level = info
max_connections = $((10000 - g))

[queue soak.work]
dead_letter = soak.work.dead
ack_timeout = $((30 + g))s

[queue soak.work.dead]

# soak-worker's victim holds its messages for ever: the ack timeout
# brings them back as well as the kills.
[queue soak.victim]
ack_timeout = $((20 + 5 * g))s
EOF
	mv "$conf.tmp" "$conf"
}
write_conf 0

pids=()
mqd_pid=""
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [ -n "$mqd_pid" ] && kill -0 "$mqd_pid" 2>/dev/null; then
		kill "$mqd_pid" 2>/dev/null || true
		wait "$mqd_pid" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { # WHAT
	echo "$(date +%T) $*" >>"$out/failures"
	echo "soak: FAILED: $*" >&2
}

"$MQD" -c "$conf" 2>"$out/mqd.stderr" &
mqd_pid=$!
for _ in $(seq 1 100); do
	[ -S "$sock" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	kill -0 "$mqd_pid" 2>/dev/null || { echo "soak: mqd exited at start" >&2; cat "$out/mqd.stderr" "$out/mqd.log" >&2; exit 1; }
	sleep 0.1
done
ctl() { "$MQCTL" -S "$sock" "$@"; }
ctl version >/dev/null

start_us=${EPOCHREALTIME/./}
end_s=$(( ${start_us:0:-6} + duration ))
running() { [ "${EPOCHREALTIME%.*}" -lt "$end_s" ] && [ ! -s "$out/failures" ]; }
elapsed() { echo $(( (${EPOCHREALTIME/./} - start_us) / 1000000 )); }

echo "soak: mqd pid $mqd_pid on $addr, $duration s, output in $out"

# ---- the sampler -------------------------------------------------------------
sampler() {
	local clk page prev_ticks prev_us now_us ticks rss thr fds cpu next_us stat
	clk=$(getconf CLK_TCK)
	page=$(getconf PAGESIZE)
	echo "seconds,rss_kb,fds,cpu_pct,threads" >"$out/soak.csv"
	prev_ticks=""
	next_us=$start_us
	while kill -0 "$mqd_pid" 2>/dev/null && [ ! -e "$out/stop-sampler" ]; do
		now_us=${EPOCHREALTIME/./}
		# One read of /proc/PID/stat gives CPU, threads and RSS at once.
		read -r stat <"/proc/$mqd_pid/stat" || break
		stat=${stat##*) }   # past the command name, which may hold spaces
		# shellcheck disable=SC2086
		set -- $stat        # $N is field N + 2 of proc(5)
		ticks=$(( ${12} + ${13} ))   # utime + stime
		thr=${18}
		rss=$(( ${22} * page / 1024 ))
		fds=$(find "/proc/$mqd_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
		# (A sample with no RSS, seen once, is a glitch of the read: skipped.)
		if [ -n "$prev_ticks" ] && [ "$rss" -gt 0 ]; then
			cpu=$(( (ticks - prev_ticks) * 1000000000 / clk / (now_us - prev_us) ))   # tenths of a percent
			printf '%d.%03d,%d,%d,%d.%d,%d\n' $(( (now_us - start_us) / 1000000 )) \
				$(( (now_us - start_us) / 1000 % 1000 )) "$rss" "$fds" \
				$((cpu / 10)) $((cpu % 10)) "$thr" >>"$out/soak.csv"
		fi
		prev_ticks=$ticks
		prev_us=$now_us
		next_us=$(( next_us + 1000000 ))
		now_us=${EPOCHREALTIME/./}
		if [ "$next_us" -gt "$now_us" ]; then
			sleep "$(printf '0.%06d' $(( next_us - now_us )))"
		else
			next_us=$now_us
		fi
	done
}
sampler &
sampler_pid=$!
pids+=("$sampler_pid")

# What glibc's allocator says, once a minute: bytes its arenas hold and
# bytes in use by allocations ("Total" of malloc_stats, which mqd writes
# to its stderr).  Diagnostic only: the verdict is on RSS.
heap_sampler() {
	local before t
	echo "seconds,system_bytes,in_use_bytes" >"$out/heap.csv"
	while sleep 60 && running; do
		before=$(wc -l <"$out/mqd.stderr")
		t=$(elapsed)
		gdb -p "$mqd_pid" -batch -ex 'call (void)malloc_stats()' \
			>/dev/null 2>&1 || continue
		sleep 0.2
		tail -n +"$((before + 1))" "$out/mqd.stderr" | awk -v t="$t" '
			/^Total/ { tot = 1 }
			tot && /system bytes/ { s = $4 }
			tot && /in use bytes/ { u = $5 }
			END { if (u != "") print t "," s "," u }' >>"$out/heap.csv"
	done
}
heap_sampler &
heap_pid=$!
pids+=("$heap_pid")

# ---- the loads ---------------------------------------------------------------
# bench NAME PAUSE ARGS...: mq-bench ARGS in a loop until the end, each run's
# JSON report appended to NAME.jsonl; any failed run fails the soak.
bench() {
	local name=$1 pause=$2 runs=0
	shift 2
	while running; do
		if ! "$MQ_BENCH" -s "$addr" -Q --json --timeout 30s "$@" \
			>>"$out/$name.jsonl" 2>>"$out/$name.err"; then
			fail "$name: mq-bench run $((runs + 1)) failed (see $name.jsonl, $name.err)"
			break
		fi
		runs=$((runs + 1))
		sleep "$pause"
	done
	echo "$runs" >"$out/$name.count"
}

bench pair 2 -m pair -p 2 -c 2 -q 4 -n 20000 -z 512 --lag 5000 --prefix soak.pair &
pids+=("$!")
bench fanout 2 -m fanout -p 1 -c 8 -n 5000 -z 256 --lag 500 --prefix soak.fan &
pids+=("$!")
bench request 2 -m request -p 2 -c 2 -n 2000 -w 8 --prefix soak.rr &
pids+=("$!")
connect_loop() {
	local runs=0
	while running; do
		if ! "$MQ_BENCH" -s "$addr" -Q -m connect -c 100 --duration 3s \
			>>"$out/connect.out" 2>&1; then
			fail "connect: mq-bench connect run $((runs + 1)) failed (see connect.out)"
			break
		fi
		runs=$((runs + 1))
		sleep 1
	done
	echo "$runs" >"$out/connect.count"
}
connect_loop &
pids+=("$!")

"$SOAK_WORKER" --server "$addr" --duration "$duration" --round 500 \
	--rate 1500 >"$out/worker.out" 2>"$out/worker.err" &
worker_pid=$!
pids+=("$worker_pid")

# mq serve answers requests with their body upside down (rev), one process
# per request.
"$MQ" -s "$addr" serve soak.cli.rpc -- rev >/dev/null 2>"$out/serve.err" &
serve_pid=$!
pids+=("$serve_pid")

cli_loop() {
	local i=0 body got
	while running; do
		i=$((i + 1))
		body="cli $i $RANDOM"
		if ! "$MQ" -s "$addr" send soak.cli "$body" >/dev/null 2>>"$out/cli.err"; then
			fail "cli: mq send $i failed"
			break
		fi
		got=$("$MQ" -s "$addr" get -t 5s soak.cli 2>>"$out/cli.err") || true
		if [ "$got" != "$body" ]; then
			fail "cli: mq get $i returned '$got', not '$body'"
			break
		fi
		got=$("$MQ" -s "$addr" request -t 10s soak.cli.rpc "$body" 2>>"$out/cli.err") || true
		if [ "$got" != "$(printf '%s\n' "$body" | rev)" ]; then
			fail "cli: mq request $i returned '$got'"
			break
		fi
		sleep 1
	done
	echo "$i" >"$out/cli.count"
}
cli_loop &
pids+=("$!")

admin_loop() {
	local i=0 id q
	while running; do
		i=$((i + 1))
		q=soak.tmp.$i
		{
			ctl --json stats && ctl --json queues && ctl --json connections &&
			ctl --json queue soak.work && ctl --json config &&
			ctl version && ctl declare "$q" max_length=100 &&
			"$MQ" -s "$addr" send "$q" "scratch $i" &&
			[ "$(ctl --json purge "$q" | jq .purged)" = 1 ] &&
			ctl delete "$q" && ctl loglevel info
		} >>"$out/admin.out" 2>&1 || { fail "admin: round $i failed (see admin.out)"; break; }
		if [ $((i % 7)) = 0 ]; then
			id=$(ctl --json connections |
				jq -r '.connections[] | select(.client == "soak-victim") | .id' | head -n 1)
			if [ -n "$id" ]; then
				ctl kill "$id" >>"$out/admin.out" 2>&1 || true # it may have just gone
				echo kill >>"$out/victim-kills"
			fi
		fi
		sleep 3
	done
	echo "$i" >"$out/admin.count"
}
admin_loop &
pids+=("$!")

# Reloads: every 60 s (a fifth of a short run), alternately by mqctl and
# by SIGHUP; each must show up in the log as applied.
reload_loop() {
	local n=0 every=60 want
	[ "$duration" -lt 300 ] && every=$((duration / 5))
	while sleep "$every" && running; do
		n=$((n + 1))
		write_conf $((n % 2))
		want=$(( $(grep -c 'configuration reloaded' "$out/mqd.log" || true) + 1 ))
		if [ $((n % 2)) = 1 ]; then
			ctl reload >>"$out/admin.out" 2>&1 || { fail "reload $n: mqctl reload failed"; break; }
			how=mqctl
		else
			kill -HUP "$mqd_pid"
			how=SIGHUP
		fi
		for _ in $(seq 1 50); do
			[ "$(grep -c 'configuration reloaded' "$out/mqd.log" || true)" -ge "$want" ] && break
			sleep 0.1
		done
		if [ "$(grep -c 'configuration reloaded' "$out/mqd.log" || true)" -lt "$want" ]; then
			fail "reload $n ($how): not logged as applied"
			break
		fi
		if [ "$(ctl --json config | jq .server.max_connections)" != $((10000 - n % 2)) ]; then
			fail "reload $n ($how): max_connections not changed"
			break
		fi
		echo "$(elapsed) $how" >>"$out/reloads"
	done
}
reload_loop &
reload_pid=$!
pids+=("$reload_pid")

# ---- the end -------------------------------------------------------------------
progress() {
	local e
	while running; do
		sleep 30
		e=$(elapsed)
		[ "$e" -ge "$duration" ] && break
		tail -n 1 "$out/soak.csv" | awk -F, -v e="$e" \
			'{ printf "soak: %4d s  rss %6.1f MiB  fds %4d  cpu %5.1f%%\n", e, $2 / 1024, $3, $4 }'
	done
}
progress &
progress_pid=$!

while running; do
	kill -0 "$mqd_pid" 2>/dev/null || { fail "mqd died (see mqd.log, mqd.stderr)"; break; }
	if ! kill -0 "$worker_pid" 2>/dev/null; then
		fail "soak-worker ended early: $(tail -n 3 "$out/worker.err" | tr '\n' ' ')"
		break
	fi
	sleep 1
done
kill "$progress_pid" 2>/dev/null || true
# soak-worker stops at the end of its round (it is due about now anyway).
kill -TERM "$worker_pid" 2>/dev/null || true
# Let every load finish its last run (each stops starting new ones now).
for p in "${pids[@]}"; do
	case "$p" in "$sampler_pid" | "$serve_pid" | "$worker_pid" | "$reload_pid" | "$heap_pid") continue ;; esac
	wait "$p" || true
done
kill "$reload_pid" "$heap_pid" 2>/dev/null || true
wait "$reload_pid" "$heap_pid" 2>/dev/null || true
if ! wait "$worker_pid"; then
	fail "soak-worker: $(tail -n 3 "$out/worker.err" | tr '\n' ' ')"
fi
touch "$out/stop-sampler"
wait "$sampler_pid" || true
kill "$serve_pid" 2>/dev/null || true
wait "$serve_pid" 2>/dev/null || true

# Nothing may be left behind in the queues the checked loads used.
ctl --json stats >"$out/stats-end.json" || fail "mqctl stats at the end"
ctl --json queues >"$out/queues-end.json" || fail "mqctl queues at the end"
left=$(jq -r '.queues[] | select(.name | test("^soak\\.(pair|work|cli|rr)")) |
	select(.ready + .held + .delayed > 0) | "\(.name) \(.ready)+\(.held)+\(.delayed)"' \
	"$out/queues-end.json")
[ -z "$left" ] || fail "messages left behind: $left"

kill "$mqd_pid"
mqd_status=0
wait "$mqd_pid" || mqd_status=$?
mqd_pid=""
[ "$mqd_status" = 0 ] || fail "mqd exited with status $mqd_status after SIGTERM"

# ---- figures -------------------------------------------------------------------
sum_json() { # FILE FIELD
	[ -s "$1" ] && jq -s "map(.$2) | add // 0" "$1" || echo 0
}
pair_msgs=$(sum_json "$out/pair.jsonl" received)
fan_msgs=$(sum_json "$out/fanout.jsonl" received)
rr_msgs=$(sum_json "$out/request.jsonl" received)
wline=$(grep '^soak-worker:' "$out/worker.out" || true)
wfield() { echo "$wline" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
w_sent=$(wfield sent); w_sent=${w_sent:-0}
w_deliv=$(wfield delivered); w_deliv=${w_deliv:-0}
cli_runs=$(cat "$out/cli.count" 2>/dev/null || echo 0)
reloads=$(wc -l <"$out/reloads")
victim_kills=$(wc -l <"$out/victim-kills")
window=60
[ "$duration" -lt 180 ] && window=$((duration / 3))

{
	echo "soak: $duration s against mqd $("$MQD" -V 2>/dev/null | head -n 1) on $(nproc) CPUs"
	echo "  load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared)"
	echo "  messages moved: $((pair_msgs + fan_msgs + rr_msgs + w_deliv + 2 * cli_runs))"
	echo "    pair (acked, checked)        $pair_msgs in $(cat "$out/pair.count" 2>/dev/null || echo 0) runs"
	echo "    fan-out deliveries (checked) $fan_msgs in $(cat "$out/fanout.count" 2>/dev/null || echo 0) runs"
	echo "    request/reply (checked)      $rr_msgs in $(cat "$out/request.count" 2>/dev/null || echo 0) runs"
	echo "    soak-worker deliveries       $w_deliv ($w_sent sent)"
	echo "    mq send/get/request          $cli_runs each"
	echo "  $wline"
	echo "  connect runs (100 connections each): $(cat "$out/connect.count" 2>/dev/null || echo 0);" \
		"admin rounds: $(cat "$out/admin.count" 2>/dev/null || echo 0); victim kills: $victim_kills"
	echo "  reloads: $reloads ($(awk '{print $2}' "$out/reloads" | sort | uniq -c | awk '{printf "%s%d by %s", s, $1, $2; s=", "}'))"
	awk -F, -v w="$window" -v d="$duration" '
	NR == 1 { next }
	{
		t = $1 + 0; n++
		if (n == 1) { r0 = $2; f0 = $3 }
		r1 = $2; f1 = $3
		if ($2 > rmax) rmax = $2
		if ($3 > fmax) fmax = $3
		if ($4 > cmax) cmax = $4
		csum += $4
		if (t >= w && t < 2 * w) { r2s += $2; f2s += $3; n2++ }
		if (t >= d - w) { rls += $2; fls += $3; nl++ }
	}
	END {
		if (n2 == 0 || nl == 0) { print "  not enough samples"; exit 1 }
		r2 = r2s / n2; rl = rls / nl; f2 = f2s / n2; fl = fls / nl
		printf "  samples: %d (one a second)\n", n
		printf "  RSS  start %.1f MiB, end %.1f MiB, max %.1f MiB; " \
		       "window 2 avg %.1f MiB, last window avg %.1f MiB (%+.1f%%)\n",
		       r0 / 1024, r1 / 1024, rmax / 1024, r2 / 1024, rl / 1024,
		       (rl / r2 - 1) * 100
		printf "  fds  start %d, end %d, max %d; window 2 avg %.1f, " \
		       "last window avg %.1f (%+.1f%%)\n", f0, f1, fmax, f2, fl,
		       (fl / f2 - 1) * 100
		printf "  CPU  avg %.1f%%, max %.1f%% (of one CPU)\n", csum / n, cmax
		printf "  (windows of %d s: the second, [%d, %d) s, against the last)\n",
		       w, w, 2 * w
		bad = 0
		if (rl > r2 * 1.10) { print "  RSS grew more than 10%"; bad = 1 }
		if (fl > f2 * 1.10) { print "  descriptors grew more than 10%"; bad = 1 }
		exit bad
	}' "$out/soak.csv" || fail "RSS or descriptors grew (see summary.txt)"
	awk -F, 'NR == 2 { t0 = $1; s0 = $2; u0 = $3 }
	NR > 1 { t1 = $1; s1 = $2; u1 = $3; if ($3 > umax) umax = $3 }
	END {
		if (NR < 2) { print "  malloc: no samples (a run under a minute, or gdb could not attach)"; exit }
		printf "  malloc (glibc malloc_stats, once a minute): in use %.2f MiB at " \
		       "%d s, %.2f MiB at %d s, max %.2f MiB; arenas hold %.2f MiB, " \
		       "then %.2f MiB\n", u0 / 1048576, t0, u1 / 1048576, t1,
		       umax / 1048576, s0 / 1048576, s1 / 1048576
	}' "$out/heap.csv"
} >"$out/summary.txt"

# ---- the plot --------------------------------------------------------------------
# Descriptors and CPU jump with the loads' runs (100 connections come and
# go every 4 s): the plot shows a 10 s moving average over the samples.
awk -F, 'NR > 1 {
	n++; f[n % 10] = $3; c[n % 10] = $4; m = n < 10 ? n : 10; sf = sc = 0
	for (i = 0; i < m; i++) { sf += f[(n - i) % 10]; sc += c[(n - i) % 10] }
	printf "%.4f %.2f %s %.2f %s\n", $1 / 60, sf / m, $3, sc / m, $4
}' "$out/soak.csv" >"$out/smooth.dat"
gnuplot -e "csv='$out/soak.csv'; smooth='$out/smooth.dat'; png='$out/soak.png'; reloads='$out/reloads'" \
	"$here/soak.gp" 2>"$out/gnuplot.err" || echo "soak: gnuplot failed (see gnuplot.err)" >&2

cat "$out/summary.txt"
if [ -s "$out/failures" ]; then
	echo "soak: FAILED:"
	sed 's/^/  /' "$out/failures"
	echo "soak: output in $out"
	exit 1
fi
echo "soak: passed; CSV, plot and logs in $out"
