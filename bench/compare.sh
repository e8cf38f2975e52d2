#!/usr/bin/env bash
# Compares diskforge with the reference tool (qemu-img, curl...) on the same
# workloads in one run, with paired, alternating runs, and writes the table
# of medians to BENCHMARKS.md.
#
#   bench/compare.sh [RUNS] [FILTER]
#
# RUNS (default 5) paired runs per workload; FILTER, a grep -E pattern on
# the workload label, limits the run (the table is then printed, not
# written). Workloads live in bench/cases/*.sh; each calls
#   pair "label" 'diskforge command' 'reference command' ['setup command']
# Commands run with bash in a fresh scratch directory, with $DF the
# release diskforge binary and $QEMU_IMG the qemu-img binary. The setup
# command runs before each timed command and is not timed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
runs=${1:-5}
filter=${2:-}
cd "$top"
cargo build --release --quiet
export DF="$top/target/release/diskforge"
export QEMU_IMG=${QEMU_IMG:-$(command -v qemu-img)}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/diskforge-bench.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

rows=()
notes=()
# note TEXT: a line printed under the table (e.g. a memory measurement).
note() { echo "$*" >&2; notes+=("$*"); }
now() { date +%s.%N; }
time_cmd() { # dir cmd -> seconds
    local dir=$1 cmd=$2 t0 t1
    t0=$(now)
    (cd "$dir" && bash -c "$cmd") >/dev/null 2>&1 || { echo "FAILED: $cmd" >&2; exit 1; }
    t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.6f\n", b - a}'
}
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

pair() {
    local label=$1 ours=$2 theirs=$3 setup=${4:-}
    if [ -n "$filter" ] && ! grep -qE "$filter" <<<"$label"; then return; fi
    local a=() b=() i d
    for ((i = 0; i < runs; i++)); do
        for side in ref ours; do
            d="$scratch/run"; rm -rf "$d"; mkdir -p "$d"
            if [ -n "$setup" ]; then (cd "$d" && bash -c "$setup") >/dev/null 2>&1; fi
            if [ $side = ref ]; then b+=("$(time_cmd "$d" "$theirs")"); else a+=("$(time_cmd "$d" "$ours")"); fi
        done
    done
    local ma mb
    ma=$(printf '%s\n' "${a[@]}" | median)
    mb=$(printf '%s\n' "${b[@]}" | median)
    local row
    row=$(printf '| %s | %.3f | %.3f | %.1f× |' "$label" "$mb" "$ma" "$(awk -v a="$mb" -v b="$ma" 'BEGIN {print a / b}')")
    echo "$row" >&2
    rows+=("$row")
}

for f in "$here"/cases/*.sh; do
    # shellcheck source=/dev/null
    source "$f"
done

table() {
    echo "| workload | reference (s) | diskforge (s) | speed-up |"
    echo "|---|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    if [ ${#notes[@]} -gt 0 ]; then
        echo
        printf -- '- %s\n' "${notes[@]}"
    fi
}
if [ -n "$filter" ]; then
    table
    exit 0
fi
{
    echo "# Benchmarks"
    echo
    echo "Made by \`bench/compare.sh $runs\` on $(date -u +%Y-%m-%d): $(nproc) cores,"
    echo "$($QEMU_IMG --version | head -1). Median wall time of $runs paired,"
    echo "alternating runs per workload; the reference is qemu-img unless the"
    echo "workload says otherwise. Speed-up = reference / diskforge."
    echo
    table
} > BENCHMARKS.md
echo "wrote BENCHMARKS.md" >&2
