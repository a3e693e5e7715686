#!/bin/sh
# The rset walk-through: resource sets, then the IBM ccNUMA paper's section 6 on
# 3D-FFT and Ocean (monitor, refine, reorganise, compare). Every `$` line below is
# a command you can type yourself.
set -e
say() { printf '\n== %s\n' "$*"; }
note() { printf '   %s\n' "$@"; }
run() { printf '$ %s\n' "$*"; "$@"; }
# A command line with a pipe.
pipe() { printf '$ %s\n' "$1"; sh -c "$1"; }

nodes=$(ls -d /sys/devices/system/node/node[0-9]* 2>/dev/null | wc -l)
[ "$nodes" -ge 1 ] || nodes=1
last=$((nodes - 1))
# The paper's runs, scaled to the emulator: 8 threads, round-robin over the nodes.
P=8
FFT="fft3d -n64 -p$P -i20"
OCEAN="ocean -n130 -p$P"
SPLASH="splash --placement round-robin --monitor-overhead 0"

work=$(mktemp -d /tmp/rset-demo.XXXXXX)
cd "$work"
trap 'cd /; rm -rf "$work"' EXIT

# keep FILE: bring FILE to the host's target/xtask/demo/. In the guest it goes out
# through the control port, between marker lines that `cargo xtask demo` reads.
keep() {
    if [ -n "$DEMO_OUT" ]; then
        cp "$1" "$DEMO_OUT/$1"
        note "-> $DEMO_OUT/$1"
    elif [ -n "$DEMO_HOST_DIR" ] && [ -w /dev/ttyS3 ]; then
        { printf '@@demo-file:%s\n' "$1"; cat "$1"; printf '\n@@demo-end\n'; } >/dev/ttyS3
        note "-> $DEMO_HOST_DIR/$1 on the host, when the demo ends"
    fi
}

say "Where are we? $DEMO_WHERE"
run rset show

say "A resource set (RSet) is CPUs plus memory nodes; Round-robin puts thread i on node i mod N"
run rset calc all --threads "$P" --placement round-robin

say "A program bound to node $last runs on its CPUs and its heap comes from node $last"
run rset bind "node:$last" -- sh -c \
    'grep Cpus_allowed_list /proc/self/status; grep heap /proc/self/numa_maps'

if [ "$nodes" -eq 1 ]; then
    say "This machine has one NUMA node: every reference is local"
    note "The rest of the story runs all the same, but finds no remote reference to" \
         "reduce; run \`cargo xtask demo\` (without --host) to see it on the emulated" \
         "4-node machine."
fi

# study NAME "PROGRAM FLAGS" "output lines to show" "what the sizes are" "where the bands are"
study() {
    name=$1 prog=$2 show="$3|^splash:"
    say "$name, orig: every shared array striped one page per node ($4)"
    note "The paper's base case: without affinity information, stripe." \
         "Round 1 of the monitor counts the references to every array page by page."
    [ "$nodes" -eq 1 ] || note "A thread finds $(( nodes - 1 )) of every $nodes pages on other nodes."
    pipe "$SPLASH --layout orig --monitor $name-orig.session $prog 2>&1 | grep -E '$show'"
    say "$name: the table of data areas, with the references from each node"
    pipe "rset-mon report $name-orig.session --top 0 | head -n 26"
    say "$name: the band structure (the paper's Fig. 8): pages x accessing nodes"
    run rset-mon report "$name-orig.session" --svg "$name-orig.svg"
    keep "$name-orig.svg"
    shift 4
    note "$@"

    if [ "$nodes" -gt 1 ]; then
        say "$name, round 2: zoom into the 4 pages with the most remote references, by cache line"
        note "The arrays are mapped elsewhere in this run: each hot page is found again by" \
             "array label and offset. The verdicts say which node dominates each line and" \
             "flag lines written from two or more nodes (the paper's Fig. 9)."
        pipe "$SPLASH --layout orig --monitor $name-lines.session --monitor-zoom $name-orig.session --monitor-top 4 $prog 2>&1 >/dev/null"
        run rset-mon report "$name-lines.session" --svg "$name-lines.svg"
        keep "$name-lines.svg"
        note "Expect the first lines of a page to stand out: the software sampler records" \
             "the reference after the one that entered a watched page, so a page scanned" \
             "from its start credits its first lines (a known limit, see the README)."
    else
        say "$name, round 2 (refinement by cache line) needs remote references: skipped on one node"
    fi

    say "$name, reorg: each thread's part of every array on its own node, as the monitor showed"
    pipe "$SPLASH --layout reorg --monitor $name-reorg.session $prog 2>&1 | grep -E '$show'"
    pipe "rset-mon report $name-reorg.session --top 0 | head -n 12"
    run rset-mon report "$name-reorg.session" --svg "$name-reorg.svg"
    keep "$name-reorg.svg"
}

study fft3d "$FFT" "layout|PASSED" \
    "64 x 64 x 64 complex doubles, two 4 MiB arrays, 20 forward + inverse round trips, $P threads" \
    "Node k's row is darkest over the planes of threads k and k+4 (round-robin), which" \
    "transform them there; the transposes read every plane from every node."
study ocean "$OCEAN" "Grid size" \
    "a 130 x 130 grid, 21 arrays of up to 288 KiB, $P threads in a 2 x 4 mesh of subgrids" \
    "Most samples fall on ocean.q_multi, the multigrid solver's grids (the solver takes" \
    "about 80% of Ocean's time). Every array holds one block per thread (contiguous" \
    "partitions): node k's row is dark over the blocks of threads k and k+4."

say "orig vs reorg: remote references (the paper's Table 2)"
run splash compare fft3d fft3d-orig.session fft3d-reorg.session \
    ocean ocean-orig.session ocean-reorg.session
note "Sizes: 3D-FFT $FFT; Ocean $OCEAN; $P threads, round-robin over $nodes node(s)." \
     "These short runs give a few hundred samples each, so the intervals are wide;" \
     "tools/xtask/src/demo/measure.sh pools several runs of each layout."

say "rset-top: the live view of a running program"
note "rset-mon record exports its counters live; rset-top (without --once: the TUI," \
     "Tab for views, Enter to drill down, r to refine a granule) reads them while the" \
     "program runs. Here a streaming program, one thread per node, for a few seconds:"
pipe "rset-run --threads round-robin --mem local -- rset-mon record -o live.session -- rset-bench stream-workload --size 32M --threads $nodes --secs 8 >/dev/null 2>&1 & sleep 4; rset-top --once --top 3; wait"
