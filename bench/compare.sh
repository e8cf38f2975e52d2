#!/usr/bin/env bash
# Compares diskforge with the reference tool (qemu-img, curl...) on the same
# workloads in one run, with paired, alternating runs, and writes the table
# of medians to BENCHMARKS.md.
#
#   bench/compare.sh [RUNS] [FILTER]
#
# RUNS (default 5) paired runs per workload that takes 0.1 s or more;
# workloads faster than that (most create and info rows take a few ms) get
# FAST_RUNS (default 51) pairs. FILTER, a grep -E pattern on the workload
# label, limits the run (the table is then printed, not written).
# Workloads live in bench/cases/*.sh; each calls
#   pair "label" 'diskforge command' 'reference command' ['setup command']
# (EXPECT_EXIT=N pair ...: both commands must exit N, not 0)
# with $DF the release diskforge binary and $QEMU_IMG the qemu-img binary.
# bench/timeit.py times each pair: every run in a fresh scratch directory
# made by the setup command (not timed); a command without shell syntax
# is timed as a bare process (no shell start-up in the time), one with
# pipes or redirections with bash -c. Reported: the median time of each
# side and the median of the per-pair ratios. BENCH_CONTEXT, when set, is
# printed above the table (say what else loaded the machine).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
runs=${1:-5}
filter=${2:-}
fast_runs=${FAST_RUNS:-51}
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
ms() { awk -v s="$1" 'BEGIN {printf "%.1f", s * 1000}'; }
pair() {
    local label=$1 ours=$2 theirs=$3 setup=${4:-}
    if [ -n "$filter" ] && ! grep -qE "$filter" <<<"$label"; then return; fi
    local method n rmed omed ratio r25 r75 o25 o75 row
    IFS=$'\t' read -r method n rmed omed ratio r25 r75 o25 o75 < <(
        python3 "$here/timeit.py" --runs "$runs" --fast-runs "$fast_runs" \
            --scratch "$scratch" --setup "$setup" \
            --expect-exit "${EXPECT_EXIT:-0}" "$ours" "$theirs"
    ) || { echo "FAILED: $label" >&2; exit 1; }
    [ -n "${ratio:-}" ] || { echo "FAILED: $label" >&2; exit 1; }
    row=$(printf '| %s | %s | %s | %s (%s–%s) | %s (%s–%s) | %.2f× |' "$label" "$method" "$n" \
        "$(ms "$rmed")" "$(ms "$r25")" "$(ms "$r75")" "$(ms "$omed")" "$(ms "$o25")" "$(ms "$o75")" "$ratio")
    echo "$row" >&2
    rows+=("$row")
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# The timer's own cost: spawning /bin/true as the workloads are spawned.
spawn_cost=$(python3 "$here/timeit.py" --runs "$fast_runs" --fast-runs "$fast_runs" \
    --scratch "$scratch" /bin/true /bin/true | cut -f3)

for f in "$here"/cases/*.sh; do
    # shellcheck source=/dev/null
    source "$f"
done

table() {
    echo "| workload | timed as | pairs | reference ms, median (p25–p75) | diskforge ms, median (p25–p75) | speed-up (median of reference/diskforge per pair) |"
    echo "|---|---|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "- Spawning /bin/true the same way takes $(ms "$spawn_cost") ms (median): that"
    echo "  cost is in both columns of every \`process\` row."
    echo "- Load average before the run: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)."
    if [ ${#notes[@]} -gt 0 ]; then
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
    echo "$($QEMU_IMG --version | head -1)."
    echo
    echo "Each workload runs in alternating pairs (reference, diskforge; then"
    echo "diskforge, reference), every run in a fresh scratch directory made by an"
    echo "untimed setup. A workload whose first pair takes under 0.1 s gets $fast_runs"
    echo "more pairs (the first was a warm-up); the others $runs in all. A command"
    echo "is timed as a bare process (\`process\`: posix_spawn and waitpid, no"
    echo "shell), unless it needs a shell"
    echo "(\`bash -c\`: the upload rows). The reference is qemu-img unless the"
    echo "workload says otherwise. Speed-up is the median over the pairs of"
    echo "reference time / diskforge time (above 1: diskforge is faster)."
    echo
    if [ -n "${BENCH_CONTEXT:-}" ]; then
        echo "$BENCH_CONTEXT"
        echo
    fi
    table
} > BENCHMARKS.md
echo "wrote BENCHMARKS.md" >&2
