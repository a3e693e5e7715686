#!/bin/sh
# Remote references orig vs reorg, pooled over several monitored runs of each layout
# (8 threads, round-robin), for the README's version of the paper's Table 2. Run it
# in the emulated 4-node machine:
#
#   cargo xtask vm --nodes 4 --cpus-per-node 2 --timeout 3600 \
#       --copy tools/xtask/src/demo/measure.sh -- sh $PWD/tools/xtask/src/demo/measure.sh \
#       fft3d 6 "fft3d -n64 -p8 -i20" ocean 8 "ocean -n258 -p8"
#
# Arguments: triples NAME RUNS "PROGRAM FLAGS" (NAME: the program, optionally with
# a tag after a slash, `fft3d/n128`). Each run prints its `splash:` line (samples,
# remote share); the end is `splash compare` over all runs of each NAME.
set -e
[ $# -ge 3 ] && [ $(($# % 3)) -eq 0 ] || {
    echo "usage: measure.sh NAME RUNS 'PROGRAM FLAGS' [NAME RUNS 'PROGRAM FLAGS']..." >&2
    exit 2
}
work=$(mktemp -d /tmp/rset-measure.XXXXXX)
trap 'rm -rf "$work"' EXIT
rows=""
while [ $# -ge 3 ]; do
    name=$1 runs=$2 prog=$3
    shift 3
    for layout in orig reorg; do
        list=""
        i=1
        while [ "$i" -le "$runs" ]; do
            f="$work/$(echo "$name" | tr / _)-$layout-$i.session"
            start=$(date +%s)
            # shellcheck disable=SC2086
            splash --placement round-robin --monitor-overhead 0 --layout "$layout" \
                --monitor "$f" $prog 2>&1 >/dev/null | sed "s|$work/||g"
            echo "   ($name $layout run $i: $prog, $(( $(date +%s) - start )) s)"
            list="$list${list:+,}$f"
            i=$((i + 1))
        done
        eval "list_$layout=\$list"
    done
    rows="$rows $name $list_orig $list_reorg"
done
echo
# shellcheck disable=SC2086
splash compare $rows
