# vmdk create: every subformat, against qemu-img (sourced by bench/compare.sh).
for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat streamOptimized; do
    pair "vmdk create $sub 10G" \
        "\$DF create -q -f vmdk -o subformat=$sub a.vmdk 10G" \
        "\$QEMU_IMG create -q -f vmdk -o subformat=$sub a.vmdk 10G"
done
pair "vmdk create monolithicSparse 1T" \
    '$DF create -q -f vmdk a.vmdk 1T' \
    '$QEMU_IMG create -q -f vmdk a.vmdk 1T'
pair "vmdk create streamOptimized 1T" \
    '$DF create -q -f vmdk -o subformat=streamOptimized a.vmdk 1T' \
    '$QEMU_IMG create -q -f vmdk -o subformat=streamOptimized a.vmdk 1T'
pair "vmdk create twoGbMaxExtentSparse 1T (513 files)" \
    '$DF create -q -f vmdk -o subformat=twoGbMaxExtentSparse a.vmdk 1T' \
    '$QEMU_IMG create -q -f vmdk -o subformat=twoGbMaxExtentSparse a.vmdk 1T'
pair "vmdk create twoGbMaxExtentFlat 1T (513 files)" \
    '$DF create -q -f vmdk -o subformat=twoGbMaxExtentFlat a.vmdk 1T' \
    '$QEMU_IMG create -q -f vmdk -o subformat=twoGbMaxExtentFlat a.vmdk 1T'
pair "vmdk create monolithicSparse 16T zeroed_grain" \
    '$DF create -q -f vmdk -o zeroed_grain=on a.vmdk 16T' \
    '$QEMU_IMG create -q -f vmdk -o zeroed_grain=on a.vmdk 16T'
