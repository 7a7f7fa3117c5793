#!/bin/sh
# contrib/pi/run.sh [SECONDS]: the Monte Carlo estimate of pi on mqd.
#
# Starts the five roles of contrib/pi/pi (tally, pythagoras, judge,
# always_yes, then bitsource) against the mqd named by $MQ_SERVER or, when
# that is unset, against an mqd of its own on a free port; lets them run for
# SECONDS (default 10); stops bitsource, waits (within a bound) until tally
# has counted every point published, stops the rest, and prints
#
#   pi ~= 3.14xxx after N points
#
# Everything it started is killed on every way out.  Exit status 0, or 1 if
# anything failed (2 on a usage error).
#
# Environment:
#   MQ_SERVER  HOST:PORT of a running mqd (else one is started here)
#   PI_BIN     the pi program (default: found next to this script, in
#              _build/ of the source tree, or in the current directory)
#   MQD_BIN    the mqd daemon, when one is started here (found likewise)
#   PI_RATE    points a second that bitsource publishes (default 2000;
#              0 = as fast as it can, which outruns judge)
#   PI_DRAIN   seconds to wait for tally to catch up at the end (default 30)

set -u

prog=run.sh
seconds=${1:-10}
rate=${PI_RATE:-2000}
drain=${PI_DRAIN:-30}

case $seconds in
''|*[!0-9]*|0) echo "usage: $prog [SECONDS]  (a whole number above 0)" >&2
    exit 2 ;;
esac
[ $# -le 1 ] || { echo "usage: $prog [SECONDS]" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd) || exit 1
top=$(cd "$here/../.." && pwd) || exit 1

# The first executable among the arguments.
find_bin() {
    for f in "$@"; do
        if [ -f "$f" ] && [ -x "$f" ]; then
            echo "$f"
            return 0
        fi
    done
    return 1
}

PI_BIN=${PI_BIN:-$(find_bin "$here/pi" "$top/_build/contrib/pi/pi" \
    "$PWD/contrib/pi/pi")} || {
    echo "$prog: cannot find the pi program: build it (make), or set PI_BIN" >&2
    exit 1
}

[ -f "$PI_BIN" ] && [ -x "$PI_BIN" ] || {
    echo "$prog: $PI_BIN is not an executable file" >&2
    exit 1
}

dir=$(mktemp -d "${TMPDIR:-/tmp}/mqd-pi.XXXXXX") || exit 1
pids=""     # the roles still running, killed by cleanup
mqd_pid=""

cleanup() {
    for p in $pids; do
        kill -TERM "$p" 2>/dev/null
    done
    # A role stops within about 250 ms of SIGTERM; give them a second.
    i=0
    while [ $i -lt 10 ]; do
        alive=""
        for p in $pids; do
            kill -0 "$p" 2>/dev/null && alive="$alive $p"
        done
        [ -z "$alive" ] && break
        sleep 0.1
        i=$((i + 1))
    done
    for p in $pids; do
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    pids=""
    if [ -n "$mqd_pid" ]; then
        kill -TERM "$mqd_pid" 2>/dev/null
        i=0
        while kill -0 "$mqd_pid" 2>/dev/null && [ $i -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -KILL "$mqd_pid" 2>/dev/null
        wait "$mqd_pid" 2>/dev/null
        mqd_pid=""
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

fail() {
    echo "$prog: $*" >&2
    for f in "$dir"/*.err "$dir"/mqd.log "$dir"/mqd.out; do
        [ -s "$f" ] || continue
        echo "--- ${f##*/}" >&2
        tail -n 20 "$f" >&2
    done
    exit 1
}

# ---- the broker
if [ -z "${MQ_SERVER:-}" ]; then
    MQD_BIN=${MQD_BIN:-$(find_bin "$top/src/mqd" "$top/_build/src/mqd" \
        "$PWD/src/mqd" "$(command -v mqd 2>/dev/null)")} || {
        echo "$prog: MQ_SERVER is unset and mqd was not found:" \
             "build it (make), or set MQD_BIN or MQ_SERVER" >&2
        exit 1
    }
    [ -f "$MQD_BIN" ] && [ -x "$MQD_BIN" ] ||
        fail "$MQD_BIN is not an executable file"
    cat >"$dir/mqd.conf" <<EOF
# written by contrib/pi/run.sh
[server]
listen = 127.0.0.1:0
log_file = $dir/mqd.log
control_socket = $dir/mqd.sock
EOF
    "$MQD_BIN" -c "$dir/mqd.conf" </dev/null >"$dir/mqd.out" 2>&1 &
    mqd_pid=$!
    # Wait for "listening on 127.0.0.1:PORT", reading whole lines only
    # (a line being written could show its port cut short).
    port=""
    i=0
    while [ -z "$port" ]; do
        kill -0 "$mqd_pid" 2>/dev/null || { mqd_pid=""; fail "mqd exited at start"; }
        [ $i -lt 100 ] || fail "mqd did not listen within 10 s"
        if [ -f "$dir/mqd.log" ]; then
            lines=$(wc -l <"$dir/mqd.log")
            port=$(head -n "$lines" "$dir/mqd.log" |
                sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' |
                head -n 1)
        fi
        [ -n "$port" ] || sleep 0.1
        i=$((i + 1))
    done
    MQ_SERVER=127.0.0.1:$port
    echo "started mqd (pid $mqd_pid) on $MQ_SERVER"
fi
export MQ_SERVER

# ---- the roles
# Start one role in the background; its pid goes in $last.
start_role() {
    role=$1
    shift
    "$PI_BIN" "$role" "$@" </dev/null >"$dir/$role.out" 2>"$dir/$role.err" &
    last=$!
    pids="$pids $last"
}

# Wait until a role has said "ready" (it has declared its queues and
# subscribed), so that nothing published before it listens.
wait_ready() {
    i=0
    until grep -q "^pi $1: ready" "$dir/$1.err" 2>/dev/null; do
        kill -0 "$2" 2>/dev/null || fail "$1 exited at start"
        [ $i -lt 100 ] || fail "$1 was not ready within 10 s"
        sleep 0.1
        i=$((i + 1))
    done
}

start_role tally;      tally_pid=$last;  wait_ready tally "$tally_pid"
start_role pythagoras; pyth_pid=$last;   wait_ready pythagoras "$pyth_pid"
start_role judge;      judge_pid=$last;  wait_ready judge "$judge_pid"
start_role always_yes; yes_pid=$last;    wait_ready always_yes "$yes_pid"
start_role bitsource -r "$rate"; bits_pid=$last
wait_ready bitsource "$bits_pid"

# The last count tally printed ("N points: pi ~= ..."), 0 if none yet.
tally_count() {
    sed -n 's/^\([0-9][0-9]*\) points: .*/\1/p' "$dir/tally.out" | tail -n 1 |
        grep . || echo 0
}

echo "running for $seconds s (bitsource at ${rate:-0} points/s)..."
t=0
while [ $t -lt "$seconds" ]; do
    sleep 1
    t=$((t + 1))
    for p in $tally_pid $pyth_pid $judge_pid $yes_pid $bits_pid; do
        kill -0 "$p" 2>/dev/null || fail "a role exited early (pid $p)"
    done
    line=$(grep '^[0-9][0-9]* points: ' "$dir/tally.out" | tail -n 1)
    [ -n "$line" ] && echo "  $line"
done

# ---- stop: the source first, then let the pipeline drain
kill -TERM "$bits_pid"
wait "$bits_pid"
rc=$?
pids=$(echo "$pids" | sed "s/ $bits_pid\$//; s/ $bits_pid / /")
[ $rc -eq 0 ] || fail "bitsource exited with status $rc"
published=$(sed -n 's/^bitsource: published \([0-9][0-9]*\) points$/\1/p' \
    "$dir/bitsource.out")
[ -n "$published" ] || fail "bitsource did not say how many points it published"
echo "bitsource published $published points; waiting for tally to count them"

i=0
limit=$((drain * 10))
while [ "$(tally_count)" -lt "$published" ]; do
    if [ $i -ge $limit ]; then
        echo "$prog: tally counted $(tally_count) of $published points" \
             "within $drain s; stopping anyway" >&2
        break
    fi
    sleep 0.1
    i=$((i + 1))
done

# tally prints its final line on SIGTERM; then the rest.
for p in $tally_pid $judge_pid $yes_pid $pyth_pid; do
    kill -TERM "$p"
    wait "$p"
    rc=$?
    pids=$(echo "$pids" | sed "s/ $p\$//; s/ $p / /")
    [ $rc -eq 0 ] || fail "a role (pid $p) exited with status $rc"
done

final=$(grep '^pi ~= ' "$dir/tally.out" | tail -n 1)
[ -n "$final" ] || fail "tally printed no estimate"
echo "$final"
exit 0
