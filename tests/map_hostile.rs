//! Hostile input for `diskforge map` and `diskforge compare` (issue 11
//! item 7): images made by qemu-img and then damaged (tables and grains
//! past the end of the file, grain tables pointing at metadata, compressed
//! lengths that overflow, huge table sizes), cyclic chains and a
//! 10 000-deep chain. Each run happens under a 256 MiB address-space limit
//! (so RSS stays under 256 MiB) and a time limit; the result must be an
//! answer or exactly one error line, never a panic, a hang or an
//! allocation sized by a header field.

mod common;

use common::{Limited, qemu_img, qemu_io, tempdir};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

/// Longer than any honest run takes, even in a debug build on a busy
/// machine.
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// Runs diskforge under the address-space and time limits.
fn run_limited(dir: &Path, args: &[&str]) -> Limited {
    common::run_limited(dir, args, TIME_LIMIT)
}

/// Checks a failed run: `code` as expected, nothing on stdout (map) and
/// one `diskforge: ` line without control characters or a panic.
fn assert_one_error(args: &[&str], r: &Limited) {
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one error line: {}", r.stderr);
    assert!(
        lines[0].starts_with("diskforge: "),
        "{args:?}: {}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
    assert!(
        !lines[0].chars().any(char::is_control),
        "{args:?}: control characters: {:?}",
        r.stderr
    );
}

/// `map` (both outputs) and `compare` against `pristine` on `file`:
/// answers or one error line. Returns the map's error line, if any.
fn survives(dir: &Path, file: &str, fmt: &str, pristine: &str) -> Option<String> {
    let mut error = None;
    for output in ["--output=json", "--output=human"] {
        let args = ["map", "-f", fmt, output, file];
        let r = run_limited(dir, &args);
        match r.code {
            0 => assert!(!r.stdout.is_empty(), "{args:?}: exit 0 and no output"),
            1 => {
                assert_one_error(&args, &r);
                error = Some(r.stderr.trim_end().to_string());
            }
            c => panic!("{args:?}: exit {c}: {}", r.stderr),
        }
    }
    let args = ["compare", "-f", fmt, "-F", fmt, file, pristine];
    let r = run_limited(dir, &args);
    match r.code {
        0 | 1 => assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr),
        // qemu-img: 2 open error, 3 block status error, 4 read error.
        2..=4 => assert_one_error(&args, &r),
        c => panic!("{args:?}: exit {c}: {}", r.stderr),
    }
    error
}

fn be64(f: &File, at: u64) -> u64 {
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, at).unwrap();
    u64::from_be_bytes(b)
}

fn le64(f: &File, at: u64) -> u64 {
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, at).unwrap();
    u64::from_le_bytes(b)
}

fn le32(f: &File, at: u64) -> u32 {
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, at).unwrap();
    u32::from_le_bytes(b)
}

fn be32(f: &File, at: u64) -> u32 {
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, at).unwrap();
    u32::from_be_bytes(b)
}

/// Where a damage goes, found from the pristine image's own tables.
type Patch = fn(&File) -> Vec<(u64, Vec<u8>)>;

/// The qcow2 L1 table's offset and the first L2 table's offset.
fn qcow2_tables(f: &File) -> (u64, u64) {
    let l1 = be64(f, 40);
    (l1, be64(f, l1) & 0x00ff_ffff_ffff_fe00)
}

/// The offset of a monolithicSparse vmdk's first grain table entry.
fn vmdk_gt0(f: &File) -> u64 {
    let gd = le64(f, 56) * 512;
    u64::from(le32(f, gd)) * 512
}

/// A streamOptimized vmdk's first grain (its marker): qemu writes it
/// right after the overhead (header and descriptor).
fn vmdk_stream_grain(f: &File) -> u64 {
    let grain = le64(f, 64) * 512;
    assert_eq!(le64(f, grain), 0, "the first grain's marker names LBA 0");
    assert_ne!(le32(f, grain + 8), 0, "the first grain has data");
    grain
}

/// A dynamic vhd's BAT offset.
fn vpc_bat(f: &File) -> u64 {
    let dyn_header = be64(f, 16);
    be64(f, dyn_header + 16)
}

struct Case {
    name: &'static str,
    /// The seed: `qemu-img create` arguments (format and file name `a`)
    /// and qemu-io commands that write data.
    fmt: &'static str,
    create: &'static [&'static str],
    io: &'static [&'static str],
    patch: Patch,
}

const QCOW2: &[&str] = &["create", "-q", "-f", "qcow2", "a", "64M"];
const VMDK: &[&str] = &["create", "-q", "-f", "vmdk", "a", "64M"];
const VDI: &[&str] = &["create", "-q", "-f", "vdi", "a", "64M"];
const VPC: &[&str] = &["create", "-q", "-f", "vpc", "a", "64M"];
const DATA: &[&str] = &["write -P 0x5a 0 1M", "write -P 0xa5 32M 64k"];

const CASES: &[Case] = &[
    Case {
        name: "qcow2 L1 entry past the end of the file",
        fmt: "qcow2",
        create: QCOW2,
        io: DATA,
        patch: |f| {
            let (l1, _) = qcow2_tables(f);
            vec![(l1, ((1u64 << 63) | (1 << 50)).to_be_bytes().to_vec())]
        },
    },
    Case {
        name: "qcow2 L1 entry pointing at the header",
        fmt: "qcow2",
        create: QCOW2,
        io: DATA,
        patch: |f| {
            let (l1, _) = qcow2_tables(f);
            vec![(l1, (1u64 << 63).to_be_bytes().to_vec())]
        },
    },
    Case {
        name: "qcow2 L1 entry pointing at the L1 table itself",
        fmt: "qcow2",
        create: QCOW2,
        io: DATA,
        patch: |f| {
            let (l1, _) = qcow2_tables(f);
            vec![(l1, ((1u64 << 63) | l1).to_be_bytes().to_vec())]
        },
    },
    Case {
        name: "qcow2 data cluster past the end of the file",
        fmt: "qcow2",
        create: QCOW2,
        io: DATA,
        patch: |f| {
            let (_, l2) = qcow2_tables(f);
            vec![(l2, ((1u64 << 63) | (1 << 45)).to_be_bytes().to_vec())]
        },
    },
    Case {
        name: "qcow2 data cluster at the top of the offset range",
        fmt: "qcow2",
        create: QCOW2,
        io: DATA,
        patch: |f| {
            let (_, l2) = qcow2_tables(f);
            vec![(l2, (0x80ff_ffff_ffff_0000u64).to_be_bytes().to_vec())]
        },
    },
    Case {
        name: "qcow2 compressed cluster: offset and length all ones",
        fmt: "qcow2",
        create: QCOW2,
        io: &["write -c -P 0x5a 0 64k"],
        patch: |f| {
            let (_, l2) = qcow2_tables(f);
            vec![(l2, ((1u64 << 62) | ((1 << 62) - 1)).to_be_bytes().to_vec())]
        },
    },
    Case {
        name: "qcow2 compressed cluster: length past the end of the file",
        fmt: "qcow2",
        create: QCOW2,
        io: &["write -c -P 0x5a 0 64k"],
        patch: |f| {
            let (_, l2) = qcow2_tables(f);
            let e = be64(f, l2);
            let offset = e & ((1 << 54) - 1);
            // 255 more 512-byte sectors than the cluster's data.
            let entry = (1u64 << 62) | (0xff << 54) | offset;
            vec![(l2, entry.to_be_bytes().to_vec())]
        },
    },
    Case {
        name: "qcow2 L2 table cut short by the end of the file",
        fmt: "qcow2",
        create: QCOW2,
        io: DATA,
        patch: |f| {
            let (_, l2) = qcow2_tables(f);
            f.set_len(l2 + 4096).unwrap();
            vec![]
        },
    },
    Case {
        name: "vmdk grain directory past the end of the file",
        fmt: "vmdk",
        create: VMDK,
        io: DATA,
        patch: |_| {
            let far = (1u64 << 40).to_le_bytes().to_vec();
            vec![(48, far.clone()), (56, far)]
        },
    },
    Case {
        name: "vmdk grain table entry past the end of the file",
        fmt: "vmdk",
        create: VMDK,
        io: DATA,
        patch: |f| vec![(vmdk_gt0(f), u32::MAX.to_le_bytes().to_vec())],
    },
    Case {
        name: "vmdk grain directory entries all pointing at the grain directory",
        fmt: "vmdk",
        create: VMDK,
        io: DATA,
        patch: |f| {
            let gd = le64(f, 56);
            let rgd = le64(f, 48);
            let entry = (gd as u32).to_le_bytes();
            let mut v = Vec::new();
            for i in 0..4u64 {
                v.push((gd * 512 + 4 * i, entry.to_vec()));
                v.push((rgd * 512 + 4 * i, entry.to_vec()));
            }
            v
        },
    },
    Case {
        name: "vmdk grain table entries pointing at the header and the grain table",
        fmt: "vmdk",
        create: VMDK,
        io: DATA,
        patch: |f| {
            let gt = vmdk_gt0(f);
            vec![
                (gt, 0u32.to_le_bytes().to_vec()),
                (gt + 4, 1u32.to_le_bytes().to_vec()),
                (gt + 8, ((gt / 512) as u32).to_le_bytes().to_vec()),
            ]
        },
    },
    Case {
        name: "vmdk streamOptimized grain with a 4 GiB compressed length",
        fmt: "vmdk",
        create: &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            "a",
            "64M",
        ],
        io: &[],
        patch: |f| vec![(vmdk_stream_grain(f) + 8, u32::MAX.to_le_bytes().to_vec())],
    },
    Case {
        name: "vmdk streamOptimized grain with a length past the end of the file",
        fmt: "vmdk",
        create: &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            "a",
            "64M",
        ],
        io: &[],
        patch: |f| {
            vec![(
                vmdk_stream_grain(f) + 8,
                0x7fff_fe00u32.to_le_bytes().to_vec(),
            )]
        },
    },
    Case {
        name: "vdi block map entry past the end of the file",
        fmt: "vdi",
        create: VDI,
        io: DATA,
        patch: |f| {
            let bmap = u64::from(le32(f, 0x154));
            vec![(bmap, 0x7fff_fff0u32.to_le_bytes().to_vec())]
        },
    },
    Case {
        name: "vdi data offset at the top of its range",
        fmt: "vdi",
        create: VDI,
        io: DATA,
        patch: |_| vec![(0x158, 0xffff_fe00u32.to_le_bytes().to_vec())],
    },
    Case {
        name: "vpc BAT entry past the end of the file",
        fmt: "vpc",
        create: VPC,
        io: DATA,
        patch: |f| vec![(vpc_bat(f), 0xffff_fff0u32.to_be_bytes().to_vec())],
    },
    Case {
        name: "vpc BAT entry pointing at the footer copy",
        fmt: "vpc",
        create: VPC,
        io: DATA,
        patch: |f| vec![(vpc_bat(f), 0u32.to_be_bytes().to_vec())],
    },
    Case {
        name: "vpc BAT past the end of the file",
        fmt: "vpc",
        create: VPC,
        io: DATA,
        patch: |f| {
            let dyn_header = be64(f, 16);
            let _ = be32(f, dyn_header + 28);
            vec![(dyn_header + 16, (1u64 << 50).to_be_bytes().to_vec())]
        },
    },
];

/// Every damaged image: `map` and `compare` answer or fail in one line,
/// within the memory and time limits.
#[test]
fn damaged_images() {
    let mut failures = Vec::new();
    for case in CASES {
        let tmp = tempdir();
        let dir = tmp.path();
        qemu_img(dir, case.create).ok();
        for cmd in case.io {
            qemu_io(dir, &["-f", case.fmt, "-c", cmd, "a"]).ok();
        }
        if case.fmt == "vmdk" && case.create.contains(&"subformat=streamOptimized") {
            // A stream-optimized image is written once: convert data into one.
            std::fs::write(dir.join("src.raw"), vec![0x5au8; 1 << 20]).unwrap();
            qemu_img(
                dir,
                &[
                    "convert",
                    "-f",
                    "raw",
                    "-O",
                    "vmdk",
                    "-o",
                    "subformat=streamOptimized",
                    "src.raw",
                    "a",
                ],
            )
            .ok();
        }
        std::fs::copy(dir.join("a"), dir.join("pristine")).unwrap();
        let f = File::options()
            .read(true)
            .write(true)
            .open(dir.join("a"))
            .unwrap();
        for (at, bytes) in (case.patch)(&f) {
            f.write_all_at(&bytes, at).unwrap();
        }
        drop(f);
        let error = std::panic::catch_unwind(|| survives(dir, "a", case.fmt, "pristine"));
        match error {
            Ok(e) => eprintln!("{}: {}", case.name, e.as_deref().unwrap_or("(mapped)")),
            Err(_) => failures.push(case.name),
        }
    }
    assert!(failures.is_empty(), "failed: {failures:?}");
}

/// `a -> b -> a` and an image that is its own backing file: refused at
/// once with qemu's "creates an infinite loop" (qemu-img map hangs on
/// both and grows without bound).
#[test]
fn cyclic_chains() {
    let tmp = tempdir();
    let dir = tmp.path();
    for (name, backing) in [("a", "b"), ("b", "a"), ("s", "s2")] {
        qemu_img(
            dir,
            &[
                "create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", "qcow2", name, "1M",
            ],
        )
        .ok();
    }
    // qemu-img will not write a self-reference: rename the name stored.
    let mut s = std::fs::read(dir.join("s")).unwrap();
    let at = s.windows(2).position(|w| w == b"s2").unwrap();
    s.splice(at..at + 2, *b"s\0");
    std::fs::write(dir.join("s"), &s).unwrap();
    // The backing name's length in the header (offset 16).
    let f = File::options()
        .read(true)
        .write(true)
        .open(dir.join("s"))
        .unwrap();
    f.write_all_at(&1u32.to_be_bytes(), 16).unwrap();
    drop(f);
    qemu_img(dir, &["create", "-q", "-f", "qcow2", "p", "1M"]).ok();
    for (file, looped) in [("a", "a"), ("b", "b"), ("s", "s")] {
        for args in [
            vec!["map", "--output=json", file],
            vec!["compare", file, "p"],
            vec!["compare", "p", file],
        ] {
            let r = run_limited(dir, &args);
            let expected_code = if args[0] == "map" { 1 } else { 2 };
            assert_eq!(r.code, expected_code, "{args:?}: {}", r.stderr);
            assert_one_error(&args, &r);
            assert_eq!(
                r.stderr,
                format!("diskforge: Backing file '{looped}' creates an infinite loop.\n"),
                "{args:?}"
            );
        }
    }
}

/// A chain of 10 000 qcow2 images: refused at once (diskforge opens at
/// most 1024 layers; qemu-img, which has no limit, is still mapping such
/// a chain after two minutes), and a 1000-deep chain is mapped.
#[test]
fn deep_chains() {
    let tmp = tempdir();
    let dir = tmp.path();
    qemu_img(
        dir,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "cluster_size=512",
            "c00000",
            "1M",
        ],
    )
    .ok();
    qemu_img(
        dir,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "cluster_size=512",
            "-u",
            "-b",
            "c00000",
            "-F",
            "qcow2",
            "tpl",
            "1M",
        ],
    )
    .ok();
    let tpl = std::fs::read(dir.join("tpl")).unwrap();
    let at = tpl.windows(6).position(|w| w == b"c00000").unwrap();
    for n in 1..=10_000 {
        let mut img = tpl.clone();
        img[at..at + 6].copy_from_slice(format!("c{:05}", n - 1).as_bytes());
        std::fs::write(dir.join(format!("c{n:05}")), img).unwrap();
    }
    for args in [
        vec!["map", "--output=json", "c10000"],
        vec!["compare", "c10000", "c00000"],
    ] {
        let r = run_limited(dir, &args);
        assert_eq!(r.code, if args[0] == "map" { 1 } else { 2 }, "{args:?}");
        assert_one_error(&args, &r);
        assert_eq!(
            r.stderr,
            "diskforge: Could not open 'c10000': Backing chain longer than 1024 images \
             (the most diskforge opens)\n",
            "{args:?}"
        );
    }
    let r = run_limited(dir, &["map", "--output=json", "c01000"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "[{ \"start\": 0, \"length\": 1048576, \"depth\": 1000, \"present\": false, \
         \"zero\": true, \"data\": false, \"compressed\": false}]\n"
    );
    let r = run_limited(dir, &["compare", "c01000", "c00000"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// A file an image names (backing file, its backing, a data file, a vmdk
/// extent) that does not open: `map` and `compare` print qemu-img's line,
/// word for word.
#[test]
fn named_files_that_do_not_open() {
    struct Case {
        name: &'static str,
        /// Run by /bin/sh in a fresh directory; makes `x.qcow2` or `x.vmdk`.
        script: &'static str,
        file: &'static str,
    }
    let cases = [
        Case {
            name: "missing backing file",
            script: "qemu-img create -q -f qcow2 -u -b nob.qcow2 -F qcow2 x.qcow2 1M",
            file: "x.qcow2",
        },
        Case {
            name: "backing file not in its format",
            script: "printf junkjunk > junk.img
                     qemu-img create -q -f qcow2 -u -b junk.img -F qcow2 x.qcow2 1M",
            file: "x.qcow2",
        },
        Case {
            name: "backing file is a directory",
            script: "mkdir d && qemu-img create -q -f qcow2 -u -b d -F qcow2 x.qcow2 1M",
            file: "x.qcow2",
        },
        Case {
            name: "backing image's extent missing",
            script: "qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentFlat v.vmdk 1M
                     rm v-f001.vmdk
                     qemu-img create -q -f qcow2 -u -b v.vmdk -F vmdk x.qcow2 1M",
            file: "x.qcow2",
        },
        Case {
            name: "backing of the backing missing",
            script: "qemu-img create -q -f qcow2 -u -b nob.qcow2 -F qcow2 c.qcow2 1M
                     qemu-img create -q -f qcow2 -u -b c.qcow2 -F qcow2 x.qcow2 1M",
            file: "x.qcow2",
        },
        Case {
            name: "data file missing",
            script: "qemu-img create -q -f qcow2 -o data_file=x.data x.qcow2 1M && rm x.data",
            file: "x.qcow2",
        },
        Case {
            name: "data file is a directory",
            script: "qemu-img create -q -f qcow2 -o data_file=x.data x.qcow2 1M
                     rm x.data && mkdir x.data",
            file: "x.qcow2",
        },
        Case {
            name: "extent missing",
            script: "qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentFlat x.vmdk 1M
                     rm x-f001.vmdk",
            file: "x.vmdk",
        },
    ];
    for case in cases {
        let tmp = tempdir();
        let dir = tmp.path();
        let made = common::run_in(dir, Path::new("/bin/sh"), &["-c", case.script]);
        assert_eq!(made.code, 0, "{}: {made:?}", case.name);
        for args in [
            vec!["map", case.file],
            vec!["compare", case.file, case.file],
        ] {
            let ours = run_limited(dir, &args);
            let theirs = qemu_img(dir, &args);
            assert_ne!(theirs.code, 0, "{}: qemu-img {args:?} succeeds", case.name);
            assert_eq!(
                ours.code,
                if args[0] == "map" { 1 } else { 2 },
                "{}",
                case.name
            );
            assert_one_error(&args, &ours);
            assert_eq!(
                ours.stderr,
                theirs.stderr.replacen("qemu-img: ", "diskforge: ", 1),
                "{}: {args:?}",
                case.name
            );
        }
    }
}
