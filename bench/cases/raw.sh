# raw creates: sparse, fallocated, zero-filled.
pair "raw 100G sparse" '$DF create -q -f raw a.img 100G' '$QEMU_IMG create -q -f raw a.img 100G'
pair "raw 2G falloc" '$DF create -q -f raw -o preallocation=falloc a.img 2G' '$QEMU_IMG create -q -f raw -o preallocation=falloc a.img 2G'
pair "raw 1G full" '$DF create -q -f raw -o preallocation=full a.img 1G' '$QEMU_IMG create -q -f raw -o preallocation=full a.img 1G'
