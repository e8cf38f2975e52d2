# qcow2 create: metadata preallocation (where qemu-img is slow), the
# default layout, falloc and full.
pair "qcow2 metadata 1T cluster 64k" '$DF create -q -f qcow2 -o preallocation=metadata a.qcow2 1T' '$QEMU_IMG create -q -f qcow2 -o preallocation=metadata a.qcow2 1T'
pair "qcow2 metadata 16G cluster 4k" '$DF create -q -f qcow2 -o preallocation=metadata,cluster_size=4k a.qcow2 16G' '$QEMU_IMG create -q -f qcow2 -o preallocation=metadata,cluster_size=4k a.qcow2 16G'
pair "qcow2 metadata 1G cluster 512" '$DF create -q -f qcow2 -o preallocation=metadata,cluster_size=512 a.qcow2 1G' '$QEMU_IMG create -q -f qcow2 -o preallocation=metadata,cluster_size=512 a.qcow2 1G'
pair "qcow2 default 1G" '$DF create -q -f qcow2 a.qcow2 1G' '$QEMU_IMG create -q -f qcow2 a.qcow2 1G'
pair "qcow2 default 100G cluster 512" '$DF create -q -f qcow2 -o cluster_size=512 a.qcow2 100G' '$QEMU_IMG create -q -f qcow2 -o cluster_size=512 a.qcow2 100G'
pair "qcow2 falloc 1G" '$DF create -q -f qcow2 -o preallocation=falloc a.qcow2 1G' '$QEMU_IMG create -q -f qcow2 -o preallocation=falloc a.qcow2 1G'
pair "qcow2 full 1G" '$DF create -q -f qcow2 -o preallocation=full a.qcow2 1G' '$QEMU_IMG create -q -f qcow2 -o preallocation=full a.qcow2 1G'
