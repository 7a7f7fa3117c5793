#!/bin/sh
# check-layers.sh [SRCDIR]: the layering of mqd's sources (issue 10).
#
# Reads the #include lines of every .c and .h file under SRCDIR (default
# "$srcdir/src", as make check runs it) and fails
#   (a) on any cycle between nodes, printing it;
#   (b) on any include between nodes that the table below does not allow;
#   (c) on any file over MAX_LINES lines.
#
# Nodes: each folder directly under src/ (src/core, src/net, ...; all of
# src/tools/** is "tools"), and each file directly in src/, named without
# its extension (src/server.c and src/server.h are both "server", src/main.c
# is "main").  A file of node A that includes "B/..." makes the edge A -> B.
# Only quote includes count, resolved against src/ (then against the
# including file's folder); "config.h" from autoconf, <...> includes, and
# quote includes that name no file under src/ (the public "mq/mq.h") are
# left out.
#
# The allowed direction: a node may include the nodes after its arrow, and
# nothing else.  This table is the layering of doc/ARCHITECTURE.md ("Layers");
# change both together.  Edit freely: one "FROM... -> TO..." per line, names
# separated by spaces or commas, "#" starts a comment.  The table itself must
# have no cycle.
ALLOWED='
main          -> server admin core proto
server        -> worker admin net owner mail store route core proto
admin         -> core proto
worker        -> net owner mail store route core proto
net           -> mail store proto core route
owner         -> mail store route core proto
mail          -> core proto
store, route  -> core, proto
core          -> proto
client        -> proto, core
tools         -> proto, core, client
'
MAX_LINES=1500

# Exit status: 0 all well, 1 a check failed, 99 could not check (automake's
# "hard error").
LC_ALL=C
export LC_ALL

src=${1:-${srcdir:-$(dirname "$0")/..}/src}
while :; do
	case $src in
	?*/) src=${src%/} ;;
	*) break ;;
	esac
done
if test ! -d "$src"; then
	echo "check-layers: $src is not a directory" >&2
	exit 99
fi

tmp=${TMPDIR:-/tmp}/check-layers.$$
trap 'rm -f "$tmp".*' 0
trap 'exit 99' 1 2 13 15

# The sources, hidden folders (.libs, .deps of an in-tree build) left out.
find "$src" -name '.*' ! -name . ! -name .. -prune -o -type f \
	\( -name '*.c' -o -name '*.h' \) -print | sort >"$tmp.files" || exit 99
if test ! -s "$tmp.files"; then
	echo "check-layers: no .c or .h file under $src" >&2
	exit 99
fi

# Pass 1: one record per file (LINES), include between nodes (EDGE) and
# node (NODE), tab-separated; sorted, so that what pass 2 prints is always
# in the same order.
awk -v src="$src" '
function rel(path) {
	return substr(path, length(src) + 2)
}
# A path relative to src/ with "." and ".." taken out; "" if it leaves src/.
function norm(p,    n, i, k, part, out, o) {
	n = split(p, part, "/")
	k = 0
	for (i = 1; i <= n; i++) {
		if (part[i] == "" || part[i] == ".")
			continue
		if (part[i] == "..") {
			if (k == 0)
				return ""
			k--
			continue
		}
		out[++k] = part[i]
	}
	o = ""
	for (i = 1; i <= k; i++)
		o = o (i > 1 ? "/" : "") out[i]
	return o
}
function node(r,    n) {
	if (index(r, "/"))
		return substr(r, 1, index(r, "/") - 1)
	n = r
	sub(/\.[^.]*$/, "", n)
	return n
}
function dir(r) {
	if (!index(r, "/"))
		return ""
	sub(/\/[^\/]*$/, "", r)
	return r
}
{
	file[++nfiles] = $0
	have[rel($0)] = 1
}
END {
	for (f = 1; f <= nfiles; f++) {
		r = rel(file[f])
		from = node(r)
		printf "NODE\t%s\n", from
		n = 0
		while ((got = (getline line < file[f])) > 0) {
			n++
			if (line !~ /^[ \t]*#[ \t]*include[ \t]*"/)
				continue
			inc = line
			sub(/^[ \t]*#[ \t]*include[ \t]*"/, "", inc)
			sub(/".*$/, "", inc)
			if (inc == "config.h")
				continue
			target = norm(inc)
			if (!(target in have)) {
				target = norm(dir(r) "/" inc)
				if (!(target in have))
					continue # not under src/
			}
			to = node(target)
			if (to != from)
				printf "EDGE\t%s\t%s\t%s:%d: #include \"%s\"\n", \
				       from, to, file[f], n, inc
		}
		if (got < 0) {
			printf "check-layers: cannot read %s\n", file[f] \
			       | "cat 1>&2"
			exit 99
		}
		close(file[f])
		printf "LINES\t%09d\t%s\n", n, file[f]
	}
}' <"$tmp.files" >"$tmp.pass1" || exit 99
sort -u "$tmp.pass1" >"$tmp.sorted" || exit 99

# Pass 2: the table, then the checks.
{
	printf '%s\n' "$ALLOWED" | sed -e 's/#.*//' -e '/^[ 	]*$/d' \
		-e 's/^/ALLOW	/'
	cat "$tmp.sorted"
} | awk -F '\t' -v max="$MAX_LINES" -v src="$src" '
function problem(msg) {
	print "check-layers: " msg
	nproblems++
}
# Depth-first search for cycles over the edges in adj (kind "table" or
# "src"); each back edge is one cycle, printed with the includes that make
# it when kind is "src".
function dfs(u, kind,    i, n, vs, v) {
	color[u] = 1
	stack[++sp] = u
	n = split(kind == "src" ? adj[u] : tadj[u], vs, " ")
	for (i = 1; i <= n; i++) {
		v = vs[i]
		if (color[v] == 1)
			report_cycle(v, kind)
		else if (color[v] == 0)
			dfs(v, kind)
	}
	sp--
	color[u] = 2
}
function report_cycle(v, kind,    i, j, s, a, b) {
	for (i = sp; i >= 1 && stack[i] != v; i--)
		;
	s = v
	for (j = i + 1; j <= sp; j++)
		s = s " -> " stack[j]
	s = s " -> " v
	if (kind == "table") {
		problem("the table of allowed includes has a cycle: " s)
		return
	}
	problem("cycle: " s)
	for (j = i; j <= sp; j++) {
		a = stack[j]
		b = j < sp ? stack[j + 1] : v
		print "    " a " -> " b ": " first[a, b]
	}
}
$1 == "ALLOW" {
	line = substr($0, length("ALLOW") + 2)
	gsub(/[,\t]/, " ", line)
	arrow = index(line, "->")
	nf = split(substr(line, 1, arrow - 1), froms, " ")
	nt = split(substr(line, arrow + 2), tos, " ")
	if (arrow == 0 || nf == 0) {
		print "check-layers: bad line in the table: " line | "cat 1>&2"
		bad_table = 1
		next
	}
	for (i = 1; i <= nf; i++) {
		in_table[froms[i]] = 1
		for (j = 1; j <= nt; j++) {
			if (!((froms[i], tos[j]) in allowed))
				tadj[froms[i]] = tadj[froms[i]] " " tos[j]
			allowed[froms[i], tos[j]] = 1
			in_table[tos[j]] = 1
			may[froms[i]] = may[froms[i]] " " tos[j]
		}
	}
	next
}
$1 == "NODE" {
	if (!($2 in is_node))
		nodes[++nnodes] = $2
	is_node[$2] = 1
	next
}
$1 == "EDGE" {
	if (!(($2, $3) in first)) {
		first[$2, $3] = $4
		adj[$2] = adj[$2] " " $3
		edges[++nedges] = $2 SUBSEP $3
	}
	where[$2, $3] = where[$2, $3] "\n    " $4
	next
}
$1 == "LINES" {
	nfiles++
	if ($2 + 0 > max)
		problem(sprintf("%s has %d lines (at most %d)", $3, $2 + 0, \
		                max))
	next
}
END {
	if (bad_table)
		exit 99
	before = nproblems
	for (u in in_table)
		if (color[u] == 0)
			dfs(u, "table")
	if (nproblems > before)
		exit 99
	split("", color)
	for (e = 1; e <= nedges; e++) {
		split(edges[e], ab, SUBSEP)
		if ((ab[1], ab[2]) in allowed)
			continue
		if (!(ab[1] in in_table))
			why = ab[1] " is not in the table"
		else if (may[ab[1]] == "")
			why = ab[1] " may include no other node"
		else
			why = ab[1] " may include only:" may[ab[1]]
		problem("include not allowed: " ab[1] " -> " ab[2] \
		        " (" why ")" where[ab[1], ab[2]])
	}
	for (i = 1; i <= nnodes; i++)
		if (color[nodes[i]] == 0)
			dfs(nodes[i], "src")
	if (nproblems) {
		printf "check-layers: %s: FAIL, %d problem(s) (the includes " \
		       "allowed are the table at the top of " \
		       "tests/check-layers.sh)\n", src, nproblems
		exit 1
	}
	printf "check-layers: %s: ok (%d files, %d nodes, %d includes " \
	       "between nodes, none over %d lines)\n", src, nfiles, nnodes, \
	       nedges, max
}'
