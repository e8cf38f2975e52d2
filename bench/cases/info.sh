# info: diskforge info against qemu-img info on the same image.
# Sourced by bench/compare.sh (pair LABEL OURS REFERENCE [SETUP]).

# An image with many internal snapshots is slow to make: it is made once
# per bench run (cached beside the scratch directory) and copied.
snap_cache="${TMPDIR:-/tmp}/diskforge-bench-info-300snap.qcow2"
snap_setup="[ -f '$snap_cache' ] || { \$QEMU_IMG create -q -f qcow2 '$snap_cache.tmp' 1G && for i in \$(seq 300); do \$QEMU_IMG snapshot -c snapshot-\$i '$snap_cache.tmp' || exit 1; done && mv '$snap_cache.tmp' '$snap_cache'; }; cp '$snap_cache' a.qcow2"

pair "info qcow2 300 snapshots (json)" '$DF info --output=json a.qcow2' '$QEMU_IMG info --output=json a.qcow2' "$snap_setup"
pair "info qcow2 300 snapshots (human)" '$DF info a.qcow2' '$QEMU_IMG info a.qcow2' "$snap_setup"
pair "info qcow2 1T with data" '$DF info --output=json a.qcow2' '$QEMU_IMG info --output=json a.qcow2' '$QEMU_IMG create -q -f qcow2 a.qcow2 1T && qemu-io -c "write -P 1 0 4M" -c "write -P 2 500G 4M" a.qcow2'
pair "info qcow2 3-deep chain --backing-chain" '$DF info --backing-chain --output=json c.qcow2' '$QEMU_IMG info --backing-chain --output=json c.qcow2' '$QEMU_IMG create -q -f raw a.raw 1G && $QEMU_IMG create -q -f qcow2 -b a.raw -F raw b.qcow2 && $QEMU_IMG create -q -f qcow2 -b b.qcow2 -F qcow2 c.qcow2'
pair "info raw 10G" '$DF info --output=json a.img' '$QEMU_IMG info --output=json a.img' '$QEMU_IMG create -q -f raw a.img 10G'
pair "info vmdk twoGbMaxExtentSparse 1T" '$DF info --output=json a.vmdk' '$QEMU_IMG info --output=json a.vmdk' '$QEMU_IMG create -q -f vmdk -o subformat=twoGbMaxExtentSparse a.vmdk 1T'
