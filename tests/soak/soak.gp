# tests/soak/soak.gp: the soak's plot (soak.sh runs it).
#   gnuplot -e "csv='soak.csv'; smooth='smooth.dat'; png='soak.png'; \
#               reloads='reloads'" soak.gp
# Three panels over minutes: mqd's RSS (MiB), open descriptors and CPU (%
# of one CPU).  Descriptors and CPU: the 1 s samples in a light colour,
# their 10 s moving average dark (smooth.dat: "MINUTES FDS-AVG FDS CPU-AVG
# CPU" lines).  Vertical lines mark the reloads.
# libgd's png: a palette image of some 15 KB, small enough for doc/.
set terminal png size 720,540 small
set output png
set datafile separator ","
set datafile columnheaders
set key off
set grid ytics lc rgb "#dddddd"
set xrange [0:*]
set autoscale xfix

# One vertical line per reload (the file: "SECONDS HOW" per line).
nreloads = int(system("wc -l < '" . reloads . "'"))
do for [i = 1:nreloads] {
	t = real(system(sprintf("sed -n '%dp' '%s' | cut -d' ' -f1", i, reloads))) / 60.0
	set arrow from t, graph 0 to t, graph 1 nohead lc rgb "#aaaaaa"
}

set multiplot layout 3,1 title "mqd soak: RSS, descriptors, CPU (vertical lines: reloads)"
set lmargin 10
set format x ""
set ylabel "RSS (MiB)"
set yrange [0:*]
plot csv using ($1 / 60.0):($2 / 1024.0) with lines lw 1.5 lc rgb "#1f77b4"
set ylabel "open fds"
set datafile separator whitespace
set datafile nocolumnheaders
plot smooth using 1:3 with lines lc rgb "#b8e0b8", \
     smooth using 1:2 with lines lw 1.5 lc rgb "#2ca02c"
set format x "%g"
set xlabel "minutes"
set ylabel "CPU (%)"
plot smooth using 1:5 with lines lc rgb "#cccccc", \
     smooth using 1:4 with lines lw 1.5 lc rgb "#d62728"
unset multiplot
