#!/bin/sh
# Quick start on a fresh Debian machine.
#
#   ./quickstart.sh         install missing build dependencies (as root),
#                           build, and run mqd on conf/mqd.conf (127.0.0.1:7400)
#   ./quickstart.sh check   the same set-up, then every test (make check)
#
# MQD_CONFIGURE_FLAGS adds flags to ./configure (CI passes --enable-werror).
set -eu
cd "$(dirname "$0")"

mode=${1:-run}
case "$mode" in
run | check) ;;
*)
	echo "usage: $0 [check]" >&2
	exit 2
	;;
esac

# Debian packages the build needs; configure.ac says which library each gives.
PKGS="gcc make autoconf automake libtool pkg-config libevent-dev libssl-dev check libinih-dev libxxhash-dev libjansson-dev libsystemd-dev"
missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" -eq 0 ]; then
		echo "quickstart: installing:$missing"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
	else
		echo "quickstart: missing packages:$missing" >&2
		echo "quickstart: run as root, or: sudo apt-get install$missing" >&2
		exit 1
	fi
fi

jobs=$(nproc 2>/dev/null || echo 2)
[ -x configure ] || ./autogen.sh
flags=${MQD_CONFIGURE_FLAGS:-}
# Configure once; again only when the flags asked for change.
if [ ! -f Makefile ] || [ "$(cat .quickstart-flags 2>/dev/null)" != "$flags" ]; then
	./configure $flags
	printf '%s' "$flags" >.quickstart-flags
fi
make -j"$jobs"

if [ "$mode" = check ]; then
	if ! make -j"$jobs" check; then
		for log in tests/*/*.log; do
			case "$log" in *test-suite.log) continue ;; esac
			grep -q -E '^(FAIL|ERROR)' "${log%.log}.trs" 2>/dev/null && cat "$log"
		done
		exit 1
	fi
	exit 0
fi

cat <<'MSG'

mqd is starting on 127.0.0.1:7400 (Ctrl-C stops it).  In another terminal:

    src/mq send jobs hello     # put a message in queue "jobs"
    src/mq get jobs            # take it out (prints: hello)

MSG
exec src/mqd -c conf/mqd.conf
