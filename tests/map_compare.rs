//! `map` and `compare` against the real qemu-img: for images made with
//! qemu-img and written with qemu-io (unaligned writes, writes at the very
//! end and across extent boundaries, zero and compressed writes, chains),
//! `diskforge map` must print exactly what `qemu-img map` prints (JSON and
//! human, stdout, stderr and status), reading the image must give the
//! bytes of `qemu-img convert -O raw`, and `compare` must answer as
//! `qemu-img compare` does.

mod common;

use common::{diskforge, qemu_img, tempdir};
use std::path::Path;
use std::process::Command;

/// One image to check: shell lines that build it (qemu-img, qemu-io,
/// truncate...) in a fresh directory, and the image to map.
struct Case {
    name: &'static str,
    script: &'static str,
    image: &'static str,
    /// `-f FMT` when the format is not detected (fixed VHD).
    fmt: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case {
        name: "raw sparse, data at unaligned offsets and the very end",
        script: "qemu-img create -f raw a.img 5M
                 qemu-io -f raw -c 'write -P 0x11 1000 3000' -c 'write -P 0x22 5241000 880' a.img",
        image: "a.img",
        fmt: None,
    },
    Case {
        name: "raw of an unaligned length",
        script: "printf abc > a.img; truncate -s 100000 a.img; printf xyz >> a.img",
        image: "a.img",
        fmt: None,
    },
    Case {
        name: "raw empty",
        script: ": > a.img",
        image: "a.img",
        fmt: None,
    },
    Case {
        name: "qcow2 v3 data, zeros, compressed, unaligned writes",
        script: "qemu-img create -f qcow2 a.qcow2 10M
                 qemu-io -c 'write -P 1 1000 70000' -c 'write -z 1M 64k' -c 'write -z 2000000 5000' \
                         -c 'write -c -P 3 4M 128k' -c 'write -P 4 10484000 1760' a.qcow2",
        image: "a.qcow2",
        fmt: None,
    },
    Case {
        name: "qcow2 v2 (compat=0.10), 512-byte clusters",
        script: "qemu-img create -f qcow2 -o compat=0.10,cluster_size=512 a.qcow2 3M
                 qemu-io -c 'write -P 5 100 10000' -c 'write -c -P 6 1M 4096' -c 'write -P 7 3144000 1728' a.qcow2",
        image: "a.qcow2",
        fmt: None,
    },
    Case {
        name: "qcow2 2 MiB clusters, unaligned size",
        script: "qemu-img create -f qcow2 -o cluster_size=2M a.qcow2 5000000
                 qemu-io -c 'write -P 8 2000000 300000' -c 'write -z 4194304 512' -c 'write -P 9 4999000 1000' a.qcow2",
        image: "a.qcow2",
        fmt: None,
    },
    Case {
        name: "qcow2 zstd compressed clusters",
        script: "qemu-img create -f qcow2 -o compression_type=zstd a.qcow2 4M
                 qemu-io -c 'write -c -P 10 0 64k' -c 'write -c -P 11 3M 192k' -c 'write -P 12 100k 5k' a.qcow2",
        image: "a.qcow2",
        fmt: None,
    },
    Case {
        name: "qcow2 extended L2 subclusters",
        script: "qemu-img create -f qcow2 -o extended_l2=on a.qcow2 4M
                 qemu-io -c 'write -P 13 0 2k' -c 'write -P 14 70000 3000' -c 'write -z 2M 8k' -c 'write -z 3M 64k' -c 'write -c 1M 64k' a.qcow2",
        image: "a.qcow2",
        fmt: None,
    },
    Case {
        name: "qcow2 preallocation=metadata",
        script: "qemu-img create -f qcow2 -o preallocation=metadata a.qcow2 5M
                 qemu-io -c 'write -P 15 1M 4k' a.qcow2",
        image: "a.qcow2",
        fmt: None,
    },
    Case {
        name: "qcow2 preallocation=falloc",
        script: "qemu-img create -f qcow2 -o preallocation=falloc a.qcow2 2M
                 qemu-io -c 'write -P 16 4096 4096' a.qcow2",
        image: "a.qcow2",
        fmt: None,
    },
    Case {
        name: "qcow2 external data file",
        script: "qemu-img create -f qcow2 -o data_file=a.data a.qcow2 3M
                 qemu-io -c 'write -P 17 1000 5000' -c 'write -z 1M 64k' -c 'write -P 18 3140000 1728' a.qcow2",
        image: "a.qcow2",
        fmt: None,
    },
    Case {
        name: "qcow2 external data file, data_file_raw",
        script: "qemu-img create -f qcow2 -o data_file=a.data,data_file_raw=on a.qcow2 3M
                 qemu-io -c 'write -P 19 1000 5000' -c 'write -P 20 2M 100k' a.qcow2",
        image: "a.qcow2",
        fmt: None,
    },
    Case {
        name: "qcow2 chain of three, top larger than its base",
        script: "qemu-img create -f qcow2 base.qcow2 2M
                 qemu-io -c 'write -P 21 0 1M' -c 'write -c -P 22 1M 64k' base.qcow2
                 qemu-img create -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2 3M
                 qemu-io -c 'write -P 23 500000 70000' -c 'write -z 0 4k' mid.qcow2
                 qemu-img create -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 4M
                 qemu-io -c 'write -P 24 900000 200000' -c 'write -P 25 3500000 1000' top.qcow2",
        image: "top.qcow2",
        fmt: None,
    },
    Case {
        name: "qcow2 over a raw base in a subdirectory",
        script: "mkdir sub; qemu-img create -f raw sub/base.raw 1M
                 qemu-io -f raw -c 'write -P 26 0 3000' -c 'write -P 27 700000 1' sub/base.raw
                 qemu-img create -f qcow2 -b base.raw -F raw sub/top.qcow2 2M
                 qemu-io -c 'write -P 28 64k 64k' sub/top.qcow2",
        image: "sub/top.qcow2",
        fmt: None,
    },
    Case {
        name: "vdi dynamic, unaligned writes across blocks, zero writes",
        script: "qemu-img create -f vdi a.vdi 5M
                 qemu-io -c 'write -P 31 1000 2000000' -c 'write -z 3M 64k' -c 'write -P 32 5241000 880' a.vdi",
        image: "a.vdi",
        fmt: None,
    },
    Case {
        name: "vdi static",
        script: "qemu-img create -f vdi -o static=on a.vdi 3M
                 qemu-io -c 'write -P 33 1048000 5000' a.vdi",
        image: "a.vdi",
        fmt: None,
    },
    Case {
        name: "vpc dynamic, writes across blocks and at the end",
        script: "qemu-img create -f vpc a.vhd 9M
                 qemu-io -c 'write -P 34 2000000 300000' -c 'write -P 35 8000000 512' -c 'write -z 6M 4k' a.vhd",
        image: "a.vhd",
        fmt: None,
    },
    Case {
        name: "vpc fixed (not detected: -f vpc)",
        script: "qemu-img create -f vpc -o subformat=fixed a.vhd 4M
                 qemu-io -f vpc -c 'write -P 36 100000 5000' a.vhd",
        image: "a.vhd",
        fmt: Some("vpc"),
    },
    Case {
        name: "qcow v1, compressed clusters, the very end",
        script: "qemu-img create -f qcow a.qcow 3M
                 qemu-io -c 'write -P 37 1000 9000' -c 'write -c -P 38 1M 4k' -c 'write -c -P 42 1052672 4k' -c 'write -P 39 3144000 1728' a.qcow",
        image: "a.qcow",
        fmt: None,
    },
    Case {
        name: "qcow v1 over a qcow base",
        script: "qemu-img create -f qcow base.qcow 2M
                 qemu-io -c 'write -P 40 0 100k' base.qcow
                 qemu-img create -f qcow -b base.qcow -F qcow top.qcow 3M
                 qemu-io -c 'write -P 41 50k 10k' top.qcow",
        image: "top.qcow",
        fmt: None,
    },
    Case {
        name: "vmdk monolithicSparse, unaligned writes and the very end",
        script: "qemu-img create -f vmdk a.vmdk 5M
                 qemu-io -c 'write -P 43 1000 70000' -c 'write -P 44 5241000 880' a.vmdk",
        image: "a.vmdk",
        fmt: None,
    },
    Case {
        name: "vmdk zeroed grains",
        script: "qemu-img create -f vmdk -o zeroed_grain=on a.vmdk 3M
                 qemu-io -c 'write -P 45 0 100k' -c 'write -z 1M 128k' -c 'write -z 64k 64k' a.vmdk",
        image: "a.vmdk",
        fmt: None,
    },
    Case {
        name: "vmdk monolithicFlat",
        script: "qemu-img create -f vmdk -o subformat=monolithicFlat a.vmdk 3M
                 qemu-io -c 'write -P 46 100000 5000' -c 'write -P 47 3144000 1728' a.vmdk",
        image: "a.vmdk",
        fmt: None,
    },
    Case {
        name: "vmdk twoGbMaxExtentSparse across extents",
        script: "qemu-img create -f vmdk -o subformat=twoGbMaxExtentSparse a.vmdk 5G
                 qemu-io -c 'write -P 48 2147480000 10000' -c 'write -P 49 5368709000 120' a.vmdk",
        image: "a.vmdk",
        fmt: None,
    },
    Case {
        name: "vmdk twoGbMaxExtentFlat across extents",
        script: "qemu-img create -f vmdk -o subformat=twoGbMaxExtentFlat a.vmdk 5G
                 qemu-io -c 'write -P 50 2147480000 10000' -c 'write -P 51 5368709000 120' a.vmdk",
        image: "a.vmdk",
        fmt: None,
    },
    Case {
        name: "vmdk streamOptimized (compressed grains, markers)",
        script: "qemu-img create -f qcow2 src.qcow2 5M
                 qemu-io -c 'write -P 52 1000 200000' -c 'write -P 53 4M 70000' src.qcow2
                 qemu-img convert -O vmdk -o subformat=streamOptimized src.qcow2 a.vmdk",
        image: "a.vmdk",
        fmt: None,
    },
    Case {
        name: "vmdk parent link in a subdirectory",
        script: "mkdir sub; qemu-img create -f vmdk sub/base.vmdk 2M
                 qemu-io -c 'write -P 54 0 300k' sub/base.vmdk
                 qemu-img create -f vmdk -b base.vmdk -F vmdk sub/top.vmdk 2M
                 qemu-io -c 'write -P 55 64k 4k' sub/top.vmdk",
        image: "sub/top.vmdk",
        fmt: None,
    },
];

/// Runs a case's script in `dir`, failing loudly if a step fails.
fn build(dir: &Path, case: &Case) {
    let out = Command::new("sh")
        .arg("-ec")
        .arg(case.script)
        .current_dir(dir)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{}: setup failed: {}",
        case.name,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// qemu-img's stderr with diskforge's program name.
fn as_diskforge(stderr: &str) -> String {
    stderr.replace("qemu-img: ", "diskforge: ")
}

/// `map` with `args` prints and exits exactly as qemu-img's.
fn check_map(dir: &Path, name: &str, args: &[&str]) {
    let mut full = vec!["map"];
    full.extend_from_slice(args);
    let q = qemu_img(dir, &full);
    let d = diskforge(dir, &full);
    assert_eq!(d.stdout, q.stdout, "{name}: map {args:?}: stdout");
    assert_eq!(
        d.stderr,
        as_diskforge(&q.stderr),
        "{name}: map {args:?}: stderr"
    );
    assert_eq!(d.code, q.code, "{name}: map {args:?}: status");
}

#[test]
fn map_equals_qemu_img() {
    for case in CASES {
        let t = tempdir();
        build(t.path(), case);
        for args in [
            &["--output=json"][..],
            &["--output=human"][..],
            &["--output=json", "--start-offset=1000", "--max-length=2M"][..],
            &["--output=json", "--start-offset=100M"][..],
            &[
                "--output=human",
                "--start-offset=65536",
                "--max-length=70000",
            ][..],
        ] {
            let mut a = args.to_vec();
            if let Some(f) = case.fmt {
                a.extend(["-f", f]);
            }
            a.push(case.image);
            check_map(t.path(), case.name, &a);
        }
    }
}

#[test]
fn reads_equal_qemu_img_convert() {
    for case in CASES {
        let t = tempdir();
        build(t.path(), case);
        let f = case.fmt.unwrap_or("");
        let fmt: &[&str] = if f.is_empty() { &[] } else { &["-f", f] };
        let mut convert = vec!["convert"];
        convert.extend_from_slice(fmt);
        convert.extend(["-O", "raw", case.image, "ref.raw"]);
        qemu_img(t.path(), &convert).ok();
        // Compare reads every area where either side has data.
        let mut cmp = vec!["compare"];
        cmp.extend_from_slice(fmt);
        cmp.extend([case.image, "ref.raw"]);
        let d = diskforge(t.path(), &cmp);
        assert_eq!(
            (d.code, d.stdout.as_str()),
            (0, "Images are identical.\n"),
            "{}: {d:?}",
            case.name
        );
        // And a difference in one byte anywhere is found where qemu finds it.
        let size = std::fs::metadata(t.path().join("ref.raw")).unwrap().len();
        if size == 0 {
            continue;
        }
        for at in [0, size / 3, size - 1] {
            let out = Command::new("qemu-io")
                .args([
                    "-f",
                    "raw",
                    "-c",
                    &format!("write -P 0xee {at} 1"),
                    "ref.raw",
                ])
                .current_dir(t.path())
                .output()
                .unwrap();
            assert!(out.status.success());
            check_compare(t.path(), case.name, &cmp[1..]);
            check_compare(t.path(), case.name, &["ref.raw", case.image]);
        }
    }
}

/// `compare` with `args` prints and exits exactly as qemu-img's.
fn check_compare(dir: &Path, name: &str, args: &[&str]) {
    let mut full = vec!["compare"];
    full.extend_from_slice(args);
    let q = qemu_img(dir, &full);
    let d = diskforge(dir, &full);
    assert_eq!(
        (d.code, d.stdout.as_str(), d.stderr.as_str()),
        (q.code, q.stdout.as_str(), as_diskforge(&q.stderr).as_str()),
        "{name}: compare {args:?}"
    );
}

#[test]
fn compare_equals_qemu_img() {
    let t = tempdir();
    let dir = t.path();
    build(
        dir,
        &Case {
            name: "pairs",
            script: "qemu-img create -f qcow2 a.qcow2 4M
                     qemu-io -c 'write -P 1 0 100k' -c 'write -z 1M 64k' -c 'write -c -P 2 2M 64k' a.qcow2
                     qemu-img convert -O raw a.qcow2 a.raw
                     qemu-img convert -O qcow2 -c a.qcow2 c.qcow2
                     qemu-img create -f raw big.raw 5M
                     qemu-img convert -n -O raw a.qcow2 big.raw
                     cp big.raw bigdirty.raw
                     qemu-io -f raw -c 'write -P 3 4500000 10' bigdirty.raw
                     cp a.raw diff.raw
                     qemu-io -f raw -c 'write -P 9 2100000 3' diff.raw
                     qemu-img create -f qcow2 empty.qcow2 4M
                     qemu-img create -f raw zero.raw 4M
                     : > nothing.raw",
            image: "",
            fmt: None,
        },
    );
    for args in [
        &["a.qcow2", "a.raw"][..],
        &["a.raw", "a.qcow2"][..],
        &["a.qcow2", "c.qcow2"][..],
        &["-s", "a.qcow2", "c.qcow2"][..],
        &["-s", "a.qcow2", "a.raw"][..],
        &["a.qcow2", "big.raw"][..],
        &["-s", "a.qcow2", "big.raw"][..],
        &["big.raw", "a.qcow2"][..],
        &["a.qcow2", "bigdirty.raw"][..],
        &["a.qcow2", "diff.raw"][..],
        &["-q", "a.qcow2", "diff.raw"][..],
        &["-f", "qcow2", "-F", "raw", "c.qcow2", "diff.raw"][..],
        &["empty.qcow2", "zero.raw"][..],
        &["empty.qcow2", "nothing.raw"][..],
        &["empty.qcow2", "missing.qcow2"][..],
        &["-f", "raw", "a.qcow2", "a.raw"][..],
    ] {
        check_compare(dir, "pairs", args);
    }
}

/// Damaged images and chains: one error line, never a panic or a hang.
#[test]
fn hostile_images_give_one_line() {
    let t = tempdir();
    let dir = t.path();
    build(
        dir,
        &Case {
            name: "hostile",
            script: "qemu-img create -f qcow2 loop1.qcow2 1M
                     qemu-img create -f qcow2 -b loop1.qcow2 -F qcow2 loop2.qcow2 1M
                     qemu-img rebase -u -b loop2.qcow2 -F qcow2 loop1.qcow2
                     qemu-img create -f qcow2 l2.qcow2 1M
                     qemu-io -c 'write 0 64k' -c 'write -c 64k 64k' l2.qcow2
                     cp l2.qcow2 unaligned.qcow2
                     # L1 entry 0 (at 0x30000): an unaligned L2 table offset
                     printf '\\200\\000\\000\\000\\000\\005\\002\\000' | dd of=unaligned.qcow2 bs=1 seek=196608 conv=notrunc 2>/dev/null
                     cp l2.qcow2 pastend.qcow2
                     printf '\\200\\000\\000\\000\\177\\000\\000\\000' | dd of=pastend.qcow2 bs=1 seek=196608 conv=notrunc 2>/dev/null
                     cp l2.qcow2 badzip.qcow2
                     # the compressed cluster (after the data cluster) made garbage
                     head -c 64 /dev/zero | tr '\\000' '\\377' | dd of=badzip.qcow2 bs=1 seek=393216 conv=notrunc 2>/dev/null",
            image: "",
            fmt: None,
        },
    );
    for (args, code) in [
        (&["map", "loop2.qcow2"][..], 1),
        (&["compare", "loop2.qcow2", "l2.qcow2"][..], 2),
        (&["map", "--output=json", "unaligned.qcow2"][..], 1),
        (&["compare", "unaligned.qcow2", "l2.qcow2"][..], 3),
        (&["map", "--output=json", "pastend.qcow2"][..], 0),
        (&["compare", "badzip.qcow2", "l2.qcow2"][..], 4),
    ] {
        let d = diskforge(dir, args);
        assert_eq!(d.code, code, "{args:?}: {d:?}");
        if code != 0 {
            assert_eq!(d.stderr.lines().count(), 1, "{args:?}: {d:?}");
            assert!(d.stderr.starts_with("diskforge: "), "{args:?}: {d:?}");
        }
    }
}
