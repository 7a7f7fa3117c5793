#!/bin/sh
# check-layers-selftest.sh: tests/check-layers.sh on the fixture trees in
# tests/layers/, each a tiny fake src/ against the real table of allowed
# includes.  Each must fail for its own reason and no other, so that a
# check that stopped working would show here, not as a silent pass:
#   clean  passes (every kind of include it must accept or leave out, and a
#          file of exactly 1,500 lines);
#   cycle  fails with the cycle core -> route -> store -> core printed;
#   edge   fails on proto -> core alone: no cycle, no long file;
#   long   fails on store/big.c's 1,501 lines alone;
# and a src/ that is not there is a hard error (99), not a pass.

here=${srcdir:-$(dirname "$0")/..}/tests
check=$here/check-layers.sh
fixtures=$here/layers
failed=0

# expect NAME STATUS [+PATTERN | -PATTERN]...: check-layers.sh on
# fixtures/NAME/src exits STATUS, its output has every +PATTERN and no
# -PATTERN (fixed strings).
expect() {
	name=$1
	want=$2
	shift 2
	out=$(sh "$check" "$fixtures/$name/src" 2>&1)
	rc=$?
	ok=yes
	if test "$rc" != "$want"; then
		echo "$name: check-layers.sh exited $rc, expected $want"
		ok=no
	fi
	for p in "$@"; do
		case $p in
		+*)
			if ! printf '%s\n' "$out" | grep -F -q -e "${p#+}"; then
				echo "$name: no \"${p#+}\" in the output"
				ok=no
			fi
			;;
		-*)
			if printf '%s\n' "$out" | grep -F -q -e "${p#-}"; then
				echo "$name: \"${p#-}\" in the output"
				ok=no
			fi
			;;
		esac
	done
	if test $ok = yes; then
		echo "ok: $name (status $rc)"
	else
		echo "---- output for $name:"
		printf '%s\n' "$out"
		echo "----"
		failed=1
	fi
}

expect clean 0 "+: ok (13 files, 8 nodes, 11 includes between nodes"
expect cycle 1 "+cycle: core -> route -> store -> core" \
	"+core -> route: " "+route -> store: " "+store -> core: " \
	"-lines (at most"
expect edge 1 "+include not allowed: proto -> core" \
	"+proto/proto.c:1: #include \"core/log.h\"" \
	"+FAIL, 1 problem(s)" "-cycle:" "-lines (at most"
expect long 1 "+store/big.c has 1501 lines (at most 1500)" \
	"+FAIL, 1 problem(s)" "-queue.c" "-not allowed" "-cycle:"
expect no-such-tree 99 "+is not a directory"

exit $failed
