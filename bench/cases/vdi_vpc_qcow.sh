# vdi, vpc/vhd and qcow v1 creation: diskforge against qemu-img with the
# same arguments (sourced by bench/compare.sh).
pair "vdi 64G" '$DF create -q -f vdi a.vdi 64G' '$QEMU_IMG create -q -f vdi a.vdi 64G'
pair "vdi static 64G" '$DF create -q -f vdi -o static=on a.vdi 64G' '$QEMU_IMG create -q -f vdi -o static=on a.vdi 64G'
pair "vdi 16T" '$DF create -q -f vdi a.vdi 16T' '$QEMU_IMG create -q -f vdi a.vdi 16T'
pair "vpc dynamic 127G" '$DF create -q -f vpc a.vhd 127G' '$QEMU_IMG create -q -f vpc a.vhd 127G'
pair "vpc dynamic 2040G" '$DF create -q -f vpc a.vhd 2040G' '$QEMU_IMG create -q -f vpc a.vhd 2040G'
pair "vpc fixed 1G" '$DF create -q -f vpc -o subformat=fixed a.vhd 1G' '$QEMU_IMG create -q -f vpc -o subformat=fixed a.vhd 1G'
pair "vpc fixed force_size 100G" '$DF create -q -f vpc -o subformat=fixed,force_size=on a.vhd 100G' '$QEMU_IMG create -q -f vpc -o subformat=fixed,force_size=on a.vhd 100G'
pair "qcow 64G" '$DF create -q -f qcow a.qcow 64G' '$QEMU_IMG create -q -f qcow a.qcow 64G'
pair "qcow 1T" '$DF create -q -f qcow a.qcow 1T' '$QEMU_IMG create -q -f qcow a.qcow 1T'
pair "qcow with backing 64G" '$DF create -q -f qcow -b base.qcow2 -F qcow2 a.qcow' '$QEMU_IMG create -q -f qcow -b base.qcow2 -F qcow2 a.qcow' '$QEMU_IMG create -q -f qcow2 base.qcow2 64G'
