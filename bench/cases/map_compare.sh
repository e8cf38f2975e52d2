# map and compare (issue 11 item 8), against qemu-img (sourced by
# bench/compare.sh). The images are made once (not timed) in the scratch
# directory and only when a row of this file is selected; then each
# command runs once more under /usr/bin/time for its peak RSS (target for
# diskforge: under 64 MiB whatever the virtual size).
map_labels=("map json qcow2 1T preallocation=metadata"
    "map json vmdk twoGbMaxExtentSparse 1T (513 files)"
    "compare raw 4G differing in the last cluster")
wanted() { [ -z "$filter" ] || grep -qE "$filter" <<<"$1"; }
# peak_rss LABEL COMMAND...: the peak RSS of one run of each command, as a note.
peak_rss() {
    local label=$1 ours=$2 theirs=$3 o t
    o=$(cd "$scratch" && eval "/usr/bin/time -f %M -o $scratch/rss.df $ours" >/dev/null 2>&1; tail -1 "$scratch/rss.df")
    t=$(cd "$scratch" && eval "/usr/bin/time -f %M -o $scratch/rss.qemu $theirs" >/dev/null 2>&1; tail -1 "$scratch/rss.qemu")
    note "$label: peak RSS diskforge $o KiB, qemu-img $t KiB"
}
mc=$scratch/map-compare
mkdir -p "$mc"
if wanted "${map_labels[0]}"; then
    "$DF" create -q -f qcow2 -o preallocation=metadata "$mc/prealloc.qcow2" 1T
    pair "${map_labels[0]}" \
        "\$DF map --output=json $mc/prealloc.qcow2" \
        "\$QEMU_IMG map --output=json $mc/prealloc.qcow2"
    peak_rss "${map_labels[0]}" "\$DF map --output=json $mc/prealloc.qcow2" \
        "\$QEMU_IMG map --output=json $mc/prealloc.qcow2"
fi
if wanted "${map_labels[1]}"; then
    "$DF" create -q -f vmdk -o subformat=twoGbMaxExtentSparse "$mc/split.vmdk" 1T
    pair "${map_labels[1]}" \
        "\$DF map --output=json $mc/split.vmdk" \
        "\$QEMU_IMG map --output=json $mc/split.vmdk"
    peak_rss "${map_labels[1]}" "\$DF map --output=json $mc/split.vmdk" \
        "\$QEMU_IMG map --output=json $mc/split.vmdk"
fi
if wanted "${map_labels[2]}"; then
    # 4 GiB of data (no holes: every byte is read), the copy differs in
    # its last byte only.
    # (yes dies of SIGPIPE: not a failure under pipefail)
    { yes 'diskforge compare bench' || true; } | head -c 4G >"$mc/a.raw"
    cp "$mc/a.raw" "$mc/b.raw"
    printf 'x' | dd of="$mc/b.raw" bs=1 seek=$(((4 << 30) - 1)) conv=notrunc status=none
    EXPECT_EXIT=1 pair "${map_labels[2]}" \
        "\$DF compare -f raw -F raw $mc/a.raw $mc/b.raw" \
        "\$QEMU_IMG compare -f raw -F raw $mc/a.raw $mc/b.raw"
    peak_rss "${map_labels[2]}" "\$DF compare -f raw -F raw $mc/a.raw $mc/b.raw" \
        "\$QEMU_IMG compare -f raw -F raw $mc/a.raw $mc/b.raw"
fi
rm -rf "$mc"
