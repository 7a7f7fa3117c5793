#!/bin/sh
# tests/fuzz/run.sh [-t SECONDS] [-o DIR] [TARGET...]
#
# Run the libFuzzer targets that "make fuzz" built (in the current
# directory, the build tree), one after another, each for SECONDS (default
# 60), starting from its seed corpus and regression inputs, with its
# dictionary if it has one.  TARGETs default to all: proto config control
# topics client.  Fails (exit 1) on any crash, leak, timeout, memory limit,
# sanitizer report or broken check (a topic mismatch, say).
#
# DIR (default fuzz-out) gets, per target, corpus/ (the inputs it found
# that reach new code), log, and on failure the input that failed
# (crash-*, leak-*, timeout-*, oom-*).  Replay one with
#   tests/fuzz/fuzz-TARGET FILE     or     tests/fuzz/replay_TARGET FILE
# and, once it is fixed, keep it in tests/fuzz/regress/TARGET/.
#
# One target at a time, one process each: the machine may be shared.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
seconds=60
out=fuzz-out
while getopts t:o: opt; do
	case $opt in
	t) seconds=$OPTARG ;;
	o) out=$OPTARG ;;
	*)
		echo "usage: $0 [-t SECONDS] [-o DIR] [TARGET...]" >&2
		exit 2
		;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- proto config control topics client

# Sanitizer reports end the run and are never hidden by an exit status.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS UBSAN_OPTIONS

failed=""
for t in "$@"; do
	bin=tests/fuzz/fuzz-$t
	if [ ! -x "$bin" ]; then
		echo "fuzz: $bin not found: run make fuzz first (in the build tree)" >&2
		exit 2
	fi
	dir=$out/$t
	mkdir -p "$dir/corpus"
	set -- "$dir/corpus" "$here/corpus/$t"
	[ -d "$here/regress/$t" ] && set -- "$@" "$here/regress/$t"
	dict=""
	[ -f "$here/$t.dict" ] && dict=-dict=$here/$t.dict
	start=$(date +%s)
	rc=0
	# shellcheck disable=SC2086 # $dict is one word or none
	"$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
		-print_final_stats=1 -artifact_prefix="$dir/" $dict "$@" \
		>"$dir/log" 2>&1 || rc=$?
	took=$(($(date +%s) - start))
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log")
	new=$(sed -n 's/^stat::new_units_added: *//p' "$dir/log")
	rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$dir/log")
	seeds=$(find "$here/corpus/$t" -type f | wc -l)
	verdict=ok
	if [ "$rc" -ne 0 ] || grep -q -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|fuzz check failed|^SUMMARY: ' "$dir/log"; then
		verdict="FAILED (exit $rc)"
		failed="$failed $t"
	fi
	echo "fuzz $t: ${took}s, ${runs:-?} runs (${rate:-?}/s), $seeds seeds + ${new:-?} new inputs, peak RSS ${rss:-?} MB: $verdict"
	if [ "$verdict" != ok ]; then
		grep -E -A 40 'ERROR: |runtime error:|fuzz check failed|==[0-9]+== ' "$dir/log" | head -n 80 >&2 || tail -n 40 "$dir/log" >&2
		for a in "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-*; do
			[ -f "$a" ] && echo "fuzz $t: failing input: $a" >&2
		done
	fi
done
if [ -n "$failed" ]; then
	echo "fuzz: FAILED:$failed (logs and inputs in $out/)" >&2
	exit 1
fi
