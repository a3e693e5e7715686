#!/bin/sh
# The rset walk-through. Every line below is a command you can type yourself.
set -e
say() { printf '\n== %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "Where are we? $DEMO_WHERE"
for n in /sys/devices/system/node/node[0-9]*; do
    id=${n##*node}
    cpus=$(cat "$n/cpulist")
    mem=$(awk '/MemTotal/ {print int($4/1024)}' "$n/meminfo")
    printf 'node %s  cpus %-6s  memory %5s MiB  distances %s\n' \
        "$id" "${cpus:-none}" "$mem" "$(cat "$n/distance")"
done
