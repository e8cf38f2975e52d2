//! `diskforge create -f qcow2` against the real qemu-img 10: the same
//! bytes, the same allocated regions, the same `qemu-img info`, a clean
//! `qemu-img check`, data written by qemu-io reads back, and the same
//! errors for invalid option combinations.

mod common;

use common::*;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// The allocated regions of a file (SEEK_DATA / SEEK_HOLE), which say
/// whether the same parts are sparse or allocated.
fn data_regions(path: &Path) -> Vec<(u64, u64)> {
    let f = std::fs::File::open(path).expect("open");
    let len = f.metadata().expect("metadata").len() as i64;
    let fd = f.as_raw_fd();
    let mut out = Vec::new();
    let mut off = 0i64;
    while off < len {
        // SAFETY: lseek on a descriptor owned by `f`.
        let d = unsafe { libc::lseek(fd, off, libc::SEEK_DATA) };
        if d < 0 {
            break;
        }
        // SAFETY: as above.
        let h = unsafe { libc::lseek(fd, d, libc::SEEK_HOLE) };
        assert!(h > d, "SEEK_HOLE failed on {}", path.display());
        out.push((d as u64, h as u64));
        off = h;
    }
    out
}

/// The first differing byte of two files whose allocated `regions` are
/// the same (holes read as zeros in both, so only regions are read).
fn first_difference_in(a: &Path, b: &Path, regions: &[(u64, u64)]) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let fa = std::fs::File::open(a).expect("open");
    let fb = std::fs::File::open(b).expect("open");
    let (la, lb) = (fa.metadata().unwrap().len(), fb.metadata().unwrap().len());
    if la != lb {
        return Some(la.min(lb));
    }
    let mut ba = vec![0u8; 4 << 20];
    let mut bb = vec![0u8; 4 << 20];
    for &(start, end) in regions {
        let mut off = start;
        while off < end {
            let n = ((end - off) as usize).min(ba.len());
            fa.read_exact_at(&mut ba[..n], off).expect("read");
            fb.read_exact_at(&mut bb[..n], off).expect("read");
            if ba[..n] != bb[..n] {
                let i = first_difference(&ba[..n], &bb[..n]).unwrap_or(0);
                return Some(off + i as u64);
            }
            off += n as u64;
        }
    }
    None
}

/// Creates `image` with both tools, in `dir/qemu` and `dir/ours`, with
/// the same arguments (so relative file names in the header agree).
fn create_both(dir: &Path, args: &[&str]) -> (Run, Run) {
    let q = dir.join("qemu");
    let d = dir.join("ours");
    std::fs::create_dir_all(&q).unwrap();
    std::fs::create_dir_all(&d).unwrap();
    let mut full = vec!["create", "-q", "-f", "qcow2"];
    full.extend_from_slice(args);
    (qemu_img(&q, &full), diskforge(&d, &full))
}

/// Every file qemu made must exist in ours with the same bytes and the
/// same allocated regions.
fn assert_same_files(dir: &Path, what: &str) {
    let q = dir.join("qemu");
    let d = dir.join("ours");
    let mut names: Vec<_> = std::fs::read_dir(&q)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let ours: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names.len(),
        ours.len(),
        "{what}: files {names:?} vs {ours:?}"
    );
    for name in names {
        let a = q.join(&name);
        let b = d.join(&name);
        let regions = data_regions(&a);
        assert_eq!(
            regions,
            data_regions(&b),
            "{what}: {} allocated regions differ",
            name.to_string_lossy()
        );
        if let Some(at) = first_difference_in(&a, &b, &regions) {
            panic!(
                "{what}: {} differs from qemu-img's at byte {at:#x}",
                name.to_string_lossy()
            );
        }
        let (xa, xb) = (allocated_bytes(&a), allocated_bytes(&b));
        let slack = 64 * 1024 + xa / 100;
        assert!(
            xa.abs_diff(xb) <= slack,
            "{what}: {} allocated {xa} vs {xb} bytes",
            name.to_string_lossy()
        );
    }
}

/// `qemu-img check` is clean and `qemu-img info` agrees.
fn assert_qemu_agrees(dir: &Path, image: &str, what: &str) {
    let d = dir.join("ours");
    let c = qemu_img(&d, &["check", image]);
    assert_eq!(c.code, 0, "{what}: qemu-img check: {c:#?}");
    let keys = ["filename", "actual-size"];
    let qi = without_keys(qemu_info_json(&dir.join("qemu"), image, &[]), &keys);
    let di = without_keys(qemu_info_json(&d, image, &[]), &keys);
    assert_eq!(qi, di, "{what}: qemu-img info differs");
}

/// Creates with both tools and checks everything.
fn check_case(args: &[&str]) {
    let t0 = std::time::Instant::now();
    let dir = tempdir();
    let what = args.join(" ");
    let (q, d) = create_both(dir.path(), args);
    assert_eq!(q.code, 0, "{what}: qemu-img failed: {q:#?}");
    assert_eq!(d.code, 0, "{what}: diskforge failed: {d:#?}");
    assert_same_files(dir.path(), &what);
    assert_qemu_agrees(dir.path(), "i.qcow2", &what);
    eprintln!("{what}: {:?}", t0.elapsed());
}

/// Writes a pattern at two offsets into diskforge's image with qemu-io
/// and into a raw image, and compares the two with `qemu-img compare`.
fn check_data_roundtrip(args: &[&str], size: &str, second: &str) {
    let dir = tempdir();
    let p = dir.path();
    let mut full = vec!["create", "-q", "-f", "qcow2"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["i.qcow2", size]);
    diskforge(p, &full).ok();
    qemu_img(p, &["create", "-q", "-f", "raw", "r.raw", size]).ok();
    for (img, fmt) in [("i.qcow2", "qcow2"), ("r.raw", "raw")] {
        for cmd in [
            "write -P 0xab 0 64k".to_string(),
            format!("write -P 0xcd {second} 64k"),
        ] {
            qemu_io(p, &["-f", fmt, "-c", &cmd, img]).ok();
        }
    }
    let c = qemu_img(
        p,
        &["compare", "-f", "qcow2", "-F", "raw", "i.qcow2", "r.raw"],
    );
    assert_eq!(c.code, 0, "{}: data differs: {c:#?}", args.join(" "));
    let c = qemu_img(p, &["check", "i.qcow2"]);
    assert_eq!(c.code, 0, "{}: check after writes: {c:#?}", args.join(" "));
}

#[test]
fn option_matrix_plain() {
    let sizes = ["0", "1M", "1000448", "1G", "100G"];
    let options: &[&str] = &[
        "",
        "compat=0.10",
        "compat=v2",
        "compat=1.1",
        "compat=v3",
        "lazy_refcounts=on",
        "compression_type=zstd",
        "compression_type=zlib",
        "cluster_size=512",
        "cluster_size=4k",
        "cluster_size=2M",
        "cluster_size=16k,extended_l2=on",
        "extended_l2=on",
        "refcount_bits=1",
        "refcount_bits=2",
        "refcount_bits=4",
        "refcount_bits=8",
        "refcount_bits=32",
        "refcount_bits=64",
        "nocow=on",
        "extent_size_hint=1M",
    ];
    for size in sizes {
        for o in options {
            let mut args = Vec::new();
            if !o.is_empty() {
                args.extend(["-o", o]);
            }
            args.extend(["i.qcow2", size]);
            check_case(&args);
        }
    }
}

#[test]
fn option_matrix_preallocation() {
    let cases: &[(&str, &str)] = &[
        ("0", "preallocation=metadata"),
        ("0", "preallocation=falloc"),
        ("0", "preallocation=full"),
        ("1M", "preallocation=off"),
        ("1000448", "preallocation=metadata"),
        ("1000448", "preallocation=metadata,cluster_size=4k"),
        ("1000448", "preallocation=falloc"),
        ("1000448", "preallocation=full"),
        ("64M", "preallocation=metadata"),
        ("64M", "preallocation=falloc"),
        ("64M", "preallocation=full"),
        ("64M", "preallocation=metadata,compat=0.10"),
        ("64M", "preallocation=metadata,lazy_refcounts=on"),
        ("64M", "preallocation=metadata,extended_l2=on"),
        ("1000448", "preallocation=metadata,extended_l2=on"),
        (
            "64M",
            "preallocation=falloc,extended_l2=on,cluster_size=32k",
        ),
        ("64M", "preallocation=metadata,refcount_bits=1"),
        ("64M", "preallocation=metadata,refcount_bits=2"),
        ("64M", "preallocation=falloc,refcount_bits=4"),
        ("64M", "preallocation=metadata,refcount_bits=8"),
        ("64M", "preallocation=metadata,cluster_size=2M"),
        (
            "10G",
            "preallocation=metadata,cluster_size=2M,refcount_bits=64",
        ),
        // Refcount blocks and tables that must grow during preallocation.
        ("16M", "preallocation=metadata,cluster_size=512"),
        (
            "16M",
            "preallocation=metadata,cluster_size=512,refcount_bits=64",
        ),
        (
            "8M",
            "preallocation=falloc,cluster_size=512,refcount_bits=64",
        ),
        ("8M", "preallocation=full,cluster_size=512"),
        (
            "32M",
            "preallocation=metadata,cluster_size=1k,refcount_bits=32",
        ),
        (
            "100M",
            "preallocation=metadata,cluster_size=4k,refcount_bits=64",
        ),
        (
            "300M",
            "preallocation=metadata,cluster_size=16k,extended_l2=on,refcount_bits=64",
        ),
    ];
    for (size, o) in cases {
        check_case(&["-o", o, "i.qcow2", size]);
    }
}

#[test]
fn huge_l1_and_refcount_tables() {
    // The L1 table alone needs refcount blocks and a bigger refcount table.
    check_case(&["-o", "cluster_size=512", "i.qcow2", "128G"]);
    check_case(&["-o", "cluster_size=512,refcount_bits=64", "i.qcow2", "16G"]);
    check_case(&["-o", "cluster_size=512,refcount_bits=1", "i.qcow2", "16G"]);
    check_case(&["i.qcow2", "256T"]);
}

#[test]
fn data_file_and_backing() {
    let dir = tempdir();
    let base = dir.path().join("base.qcow2");
    let base = base.to_str().unwrap();
    qemu_img(dir.path(), &["create", "-q", "-f", "qcow2", base, "64M"]).ok();
    let raw = dir.path().join("base.raw");
    let raw = raw.to_str().unwrap();
    qemu_img(dir.path(), &["create", "-q", "-f", "raw", raw, "32M"]).ok();
    let cases: Vec<Vec<&str>> = vec![
        vec!["-o", "data_file=d.raw", "i.qcow2", "64M"],
        vec!["-o", "data_file=d.raw", "i.qcow2", "1000448"],
        vec!["-o", "data_file=d.raw", "i.qcow2", "1k"],
        vec![
            "-o",
            "data_file=d.raw,preallocation=metadata",
            "i.qcow2",
            "64M",
        ],
        vec![
            "-o",
            "data_file=d.raw,preallocation=metadata",
            "i.qcow2",
            "1000448",
        ],
        vec!["-o", "data_file=d.raw,data_file_raw=on", "i.qcow2", "64M"],
        vec![
            "-o",
            "data_file=d.raw,preallocation=falloc",
            "i.qcow2",
            "64M",
        ],
        vec!["-o", "data_file=d.raw,preallocation=full", "i.qcow2", "8M"],
        vec!["-b", base, "-F", "qcow2", "i.qcow2"],
        vec!["-b", raw, "-F", "raw", "i.qcow2", "1G"],
        vec!["-b", base, "-F", "qcow2", "-o", "compat=0.10", "i.qcow2"],
        vec![
            "-b",
            base,
            "-F",
            "qcow2",
            "-o",
            "cluster_size=512",
            "i.qcow2",
        ],
        vec![
            "-b",
            base,
            "-F",
            "qcow2",
            "-o",
            "cluster_size=4k",
            "i.qcow2",
        ],
        vec![
            "-b",
            base,
            "-F",
            "qcow2",
            "-o",
            "extended_l2=on,preallocation=metadata",
            "i.qcow2",
        ],
        vec![
            "-b",
            base,
            "-F",
            "qcow2",
            "-o",
            "extended_l2=on,preallocation=falloc",
            "i.qcow2",
        ],
        vec!["-u", "-b", base, "-F", "qcow2", "i.qcow2", "1G"],
    ];
    for args in cases {
        check_case(&args);
    }
}

#[test]
fn data_written_by_qemu_reads_back() {
    check_data_roundtrip(&[], "64M", "32M");
    check_data_roundtrip(&["-o", "preallocation=metadata"], "64M", "40M");
    check_data_roundtrip(&["-o", "preallocation=falloc"], "16M", "1M");
    check_data_roundtrip(&["-o", "preallocation=full"], "8M", "4M");
    check_data_roundtrip(
        &[
            "-o",
            "cluster_size=512,preallocation=metadata,refcount_bits=64",
        ],
        "4M",
        "2M",
    );
    check_data_roundtrip(&["-o", "compat=0.10,cluster_size=4k"], "16M", "9M");
    check_data_roundtrip(&["-o", "extended_l2=on,refcount_bits=1"], "16M", "5M");
    check_data_roundtrip(
        &["-o", "data_file=d.raw,preallocation=metadata"],
        "8M",
        "3M",
    );
}

#[test]
fn invalid_combinations_match_qemu() {
    let dir = tempdir();
    let base = dir.path().join("base.raw");
    let base = base.to_str().unwrap();
    qemu_img(dir.path(), &["create", "-q", "-f", "raw", base, "1M"]).ok();
    let cases: Vec<Vec<&str>> = vec![
        vec!["-o", "compat=xyz"],
        vec!["-o", "compat=v4"],
        vec!["-o", "cluster_size=1000"],
        vec!["-o", "cluster_size=256"],
        vec!["-o", "cluster_size=4M"],
        vec!["-o", "extended_l2=on,cluster_size=8k"],
        vec!["-o", "extended_l2=on,compat=0.10"],
        vec!["-o", "lazy_refcounts=on,compat=0.10"],
        vec!["-o", "refcount_bits=3"],
        vec!["-o", "refcount_bits=0"],
        vec!["-o", "refcount_bits=128"],
        vec!["-o", "refcount_bits=8,compat=0.10"],
        vec!["-o", "data_file_raw=on"],
        vec!["-o", "data_file=d.raw,compat=0.10"],
        vec!["-o", "compression_type=zstd,compat=0.10"],
        vec!["-o", "compression_type=lz4"],
        vec!["-o", "preallocation=xx"],
        vec!["-b", base, "-F", "raw", "-o", "preallocation=metadata"],
        vec![
            "-b",
            base,
            "-F",
            "raw",
            "-o",
            "data_file=d.raw,data_file_raw=on",
        ],
    ];
    for args in cases {
        let what = args.join(" ");
        let mut full = vec!["create", "-q", "-f", "qcow2"];
        full.extend_from_slice(&args);
        full.extend(["i.qcow2", "1M"]);
        let q = qemu_img(dir.path(), &full);
        let d = diskforge(dir.path(), &full);
        assert_ne!(q.code, 0, "{what}: qemu-img accepted it");
        assert_eq!(d.code, 2, "{what}: {d:#?}");
        let qmsg = q.stderr.trim().strip_prefix("qemu-img: ").unwrap_or("");
        let dmsg = d.stderr.trim().strip_prefix("diskforge: ").unwrap_or("");
        assert_eq!(qmsg, dmsg, "{what}: message");
        assert!(!dir.path().join("i.qcow2").exists(), "{what}: file left");
        assert!(!dir.path().join("d.raw").exists(), "{what}: data file left");
    }
}

#[test]
fn too_large_is_refused_like_qemu() {
    let dir = tempdir();
    for args in [
        vec!["-o", "cluster_size=512", "i.qcow2", "16T"],
        vec!["-o", "cluster_size=512", "i.qcow2", "129G"],
    ] {
        let mut full = vec!["create", "-q", "-f", "qcow2"];
        full.extend_from_slice(&args);
        let q = qemu_img(dir.path(), &full);
        let d = diskforge(dir.path(), &full);
        assert_ne!(q.code, 0);
        assert_eq!(d.code, 1, "{d:#?}");
        let qmsg = q.stderr.trim().strip_prefix("qemu-img: ").unwrap_or("");
        let dmsg = d.stderr.trim().strip_prefix("diskforge: ").unwrap_or("");
        assert_eq!(qmsg, dmsg);
        assert!(!dir.path().join("i.qcow2").exists());
    }
}
