#!/usr/bin/env bash
# Seeds for the map_* fuzz targets (see fixtures/README.md): run in an
# empty directory; writes corpus/map_FORMAT/NAME, each a 4-byte little-endian
# length of the top image, the top image, then its backing file.
set -e
seed() { # seed NAME FORMAT TOP [BACKING]
  python3 - "$@" <<'PY'
import sys,os
name,fmt,top=sys.argv[1:4]; back=sys.argv[4] if len(sys.argv)>4 else None
t=open(top,'rb').read(); b=open(back,'rb').read() if back else b''

os.makedirs('corpus/map_'+fmt,exist_ok=True)
open('corpus/map_%s/%s'%(fmt,name),'wb').write(len(t).to_bytes(4,'little')+t+b)
PY
}
q() { qemu-img "$@" -q; }
io() { qemu-io -f "$1" -c "$2" "$3" >/dev/null; }
# qcow2
q create -f qcow2 -o cluster_size=512 backing.img 64k; io qcow2 "write -c -P 1 0 512" backing.img; io qcow2 "write -P 2 4k 1k" backing.img
q create -f qcow2 -o cluster_size=512 -b backing.img -F qcow2 t.qcow2 64k; io qcow2 "write -P 3 1k 1k" t.qcow2; io qcow2 "write -z 8k 1k" t.qcow2
seed chain qcow2 t.qcow2 backing.img; rm backing.img
q create -f qcow2 -o cluster_size=512,compression_type=zstd z.qcow2 64k; io qcow2 "write -c -P 7 0 512" z.qcow2
seed zstd qcow2 z.qcow2
# qcow
q create -f qcow backing.img 64k; io qcow "write -P 2 0 1k" backing.img
q create -f qcow -b backing.img -F qcow t.qcow 64k; io qcow "write -P 3 4k 1k" t.qcow
seed chain qcow t.qcow backing.img; rm backing.img
# vmdk
q create -f vmdk backing.img 1M; io vmdk "write -P 2 0 1k" backing.img
q create -f vmdk -b backing.img -F vmdk t.vmdk 1M; io vmdk "write -P 3 64k 1k" t.vmdk
seed chain vmdk t.vmdk backing.img; rm backing.img
head -c 64k /dev/urandom > r.raw; q convert -f raw -O vmdk -o subformat=streamOptimized r.raw s.vmdk
seed stream vmdk s.vmdk
q create -f vmdk -o zeroed_grain=on zg.vmdk 1M; io vmdk "write -z 0 64k" zg.vmdk; seed zeroed vmdk zg.vmdk
# vdi (no backing)
q create -f vdi v.vdi 4M; seed empty vdi v.vdi; io vdi "write -P 2 1M 1k" v.vdi; seed dynamic vdi v.vdi
q create -f vdi -o static=on vs.vdi 1M; seed static vdi vs.vdi
q create -f vpc p.vhd 4M; io vpc "write -P 2 1M 1k" p.vhd; seed dynamic vpc p.vhd
head -c 8k /dev/urandom > raw.img; seed data raw raw.img
