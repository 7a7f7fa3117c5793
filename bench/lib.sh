# bench/lib.sh: what the scripts that start servers on loopback share
# (bench/compare.sh, bench/ab.sh, tests/soak/soak.sh).  Sourced, not run.

# A TCP port on 127.0.0.1 that nothing listens on now, on stdout.
free_port() {
	local p
	for p in $(shuf -i 20000-60000 -n 100); do
		if [ -z "$(ss -Htan "sport = :$p")" ]; then
			echo "$p"
			return 0
		fi
	done
	echo "no free port found on 127.0.0.1" >&2
	return 1
}

# Wait up to 10 s until PID accepts on 127.0.0.1:PORT.  0 when it does,
# 1 when PID exited first, 2 when time ran out.
wait_listening() { # PORT PID
	local i
	for i in $(seq 1 100); do
		kill -0 "$2" 2>/dev/null || return 1
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 2
}
