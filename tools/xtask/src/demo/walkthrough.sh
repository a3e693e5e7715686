#!/bin/sh
# The rset walk-through. Every `$` line below is a command you can type yourself.
set -e
say() { printf '\n== %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

nodes=$(ls -d /sys/devices/system/node/node[0-9]* | wc -l)
last=$((nodes - 1))
threads=$(grep -c ^processor /proc/cpuinfo)

say "Where are we? $DEMO_WHERE"
run rset show

say "A resource set (RSet) is CPUs plus memory nodes; specs compose them left to right"
run rset calc "node:$last"
run rset calc "all - node:0"
run rset calc "cpu:0 + mem:$last"

say "Fill placement: as many threads on a node as it has CPUs, then the next node"
run rset calc all --threads "$threads" --placement fill

say "Round-robin placement: thread i on node i mod N"
run rset calc all --threads "$threads" --placement round-robin

say "Binding: a program bound to node $last runs on its CPUs and its heap comes from node $last"
run rset bind "node:$last" -- sh -c \
    'grep Cpus_allowed_list /proc/self/status; grep heap /proc/self/numa_maps'

say "CPUs of node 0 with memory of node $last: remote on purpose (the paper's Remote policy)"
run rset bind "cpu:0 + mem:$last" -- sh -c \
    'grep Cpus_allowed_list /proc/self/status; grep heap /proc/self/numa_maps'

say "Bad specs get one line naming the culprit, and exit status 2"
printf '$ rset calc node:%s\n' "$nodes"
rset calc "node:$nodes" || echo "(exit status $?)"
