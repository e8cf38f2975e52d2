//! `diskforge info` against `qemu-img info` on images made at test time by
//! the real qemu-img and qemu-io: the JSON must be byte-identical (and is
//! compared key by key for a readable failure), the human text line by
//! line, with and without `--backing-chain`.
//!
//! Adding a format or variant is one `case!` line: a test name, the file
//! to inspect, and the qemu commands that make it.

mod common;

use common::{diskforge, qemu_img, qemu_io, tempdir};
use diskforge::qapi::{
    ChildInfo, FormatSpecific, ImageInfo, SnapshotInfo, VmdkSpecific, write_human, write_json,
};
use serde_json::Value;
use std::path::Path;

/// Runs one setup step in `dir`: `["qemu-img", args...]`,
/// `["qemu-io", args...]`, or `["qemu-io!", args...]` for a qemu-io run
/// that is expected to die (to leave an image dirty).
fn step(dir: &Path, s: &[&str]) {
    match s[0] {
        "qemu-img" => {
            qemu_img(dir, &s[1..]).ok();
        }
        "qemu-io" => {
            qemu_io(dir, &s[1..]).ok();
        }
        "qemu-io!" => {
            let r = qemu_io(dir, &s[1..]);
            assert_ne!(r.code, 0, "qemu-io was expected to abort: {r:#?}");
        }
        "mkdir" => std::fs::create_dir_all(dir.join(s[1])).unwrap(),
        other => panic!("unknown step {other}"),
    }
}

/// The first line where two texts differ, for failure messages.
fn first_line_diff(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}: qemu-img {x:?} / diskforge {y:?}", i + 1);
        }
    }
    format!(
        "line counts differ: qemu-img {} / diskforge {}",
        a.lines().count(),
        b.lines().count()
    )
}

/// Key-by-key comparison of two JSON values; returns the first path that
/// differs.
fn json_diff(path: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    None => return Some(format!("{path}.{k}: missing in diskforge")),
                    Some(w) => {
                        if let Some(d) = json_diff(&format!("{path}.{k}"), v, w) {
                            return Some(d);
                        }
                    }
                }
            }
            y.keys()
                .find(|k| !x.contains_key(*k))
                .map(|k| format!("{path}.{k}: only in diskforge"))
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| json_diff(&format!("{path}[{i}]"), v, w)),
        _ if a == b => None,
        _ => Some(format!("{path}: qemu-img {a} / diskforge {b}")),
    }
}

/// `info` of `file` by both tools with `extra` arguments, compared.
pub fn compare(dir: &Path, file: &str, extra: &[&str]) {
    for output in ["--output=json", "--output=human"] {
        let mut args = vec!["info", output];
        args.extend_from_slice(extra);
        args.push(file);
        let q = qemu_img(dir, &args);
        assert_eq!(q.code, 0, "qemu-img {args:?} failed: {q:#?}");
        let d = diskforge(dir, &args);
        assert_eq!(d.code, 0, "diskforge {args:?} failed: {d:#?}");
        if output == "--output=json" {
            let qv: Value = serde_json::from_str(&q.stdout).expect("qemu JSON");
            let dv: Value = serde_json::from_str(&d.stdout).unwrap_or_else(|e| {
                panic!(
                    "diskforge {args:?} printed invalid JSON ({e}):\n{}",
                    d.stdout
                )
            });
            if let Some(diff) = json_diff("", &qv, &dv) {
                panic!("{args:?}: {diff}");
            }
        }
        assert!(
            q.stdout == d.stdout,
            "{args:?}: {}\n--- qemu-img\n{}\n--- diskforge\n{}",
            first_line_diff(&q.stdout, &d.stdout),
            q.stdout,
            d.stdout
        );
    }
}

/// Makes the image with `steps` in a fresh directory and compares `info`
/// (plain and `--backing-chain`) of `file`.
fn check_case(file: &str, steps: &[&[&str]]) {
    let dir = tempdir();
    for s in steps {
        step(dir.path(), s);
    }
    compare(dir.path(), file, &[]);
    compare(dir.path(), file, &["--backing-chain"]);
}

macro_rules! case {
    ($(#[$attr:meta])* $name:ident, $file:expr, $($step:expr),+ $(,)?) => {
        #[test]
        $(#[$attr])*
        fn $name() {
            check_case($file, &[$(&$step),+]);
        }
    };
}

// raw
case! {raw_empty, "a.img", ["qemu-img", "create", "-q", "-f", "raw", "a.img", "0"]}
case! {raw_data, "a.img", ["qemu-img", "create", "-q", "-f", "raw", "a.img", "3M"], ["qemu-io", "-f", "raw", "-c", "write -P 7 1M 64k", "a.img"]}
// qcow2, every creation option
case! {qcow2_default, "a.qcow2", ["qemu-img", "create", "-q", "-f", "qcow2", "a.qcow2", "1G"]}
case! {qcow2_v2, "a.qcow2", ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "a.qcow2", "100M"]}
case! {qcow2_lazy_extl2_zstd, "a.qcow2", ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on,extended_l2=on,compression_type=zstd", "a.qcow2", "100M"]}
case! {qcow2_refcount_bits_1_cluster_512, "a.qcow2", ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "refcount_bits=1,cluster_size=512", "a.qcow2", "10M"]}
case! {qcow2_refcount_bits_64_cluster_2m, "a.qcow2", ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "refcount_bits=64,cluster_size=2M", "a.qcow2", "10M"]}
case! {qcow2_prealloc_metadata, "a.qcow2", ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", "a.qcow2", "20M"]}
case! {qcow2_odd_size, "a.qcow2", ["qemu-img", "create", "-q", "-f", "qcow2", "a.qcow2", "1000"]}
case! {qcow2_data, "a.qcow2", ["qemu-img", "create", "-q", "-f", "qcow2", "a.qcow2", "64M"], ["qemu-io", "-c", "write -P 0x5a 0 1M", "-c", "write -z 4M 1M", "-c", "discard 0 64k", "a.qcow2"]}
case! {qcow2_compressed, "c.qcow2", ["qemu-img", "create", "-q", "-f", "raw", "a.img", "4M"], ["qemu-io", "-f", "raw", "-c", "write -P 0x11 0 2M", "a.img"], ["qemu-img", "convert", "-c", "-O", "qcow2", "a.img", "c.qcow2"]}
case! {qcow2_compressed_zstd, "c.qcow2", ["qemu-img", "create", "-q", "-f", "raw", "a.img", "4M"], ["qemu-io", "-f", "raw", "-c", "write -P 0x11 0 2M", "a.img"], ["qemu-img", "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", "a.img", "c.qcow2"]}
case! {qcow2_snapshots, "a.qcow2", ["qemu-img", "create", "-q", "-f", "qcow2", "a.qcow2", "10M"], ["qemu-io", "-c", "write -P 1 0 64k", "a.qcow2"], ["qemu-img", "snapshot", "-c", "first", "a.qcow2"], ["qemu-img", "snapshot", "-c", "a snapshot with a rather long name", "a.qcow2"], ["qemu-img", "snapshot", "-c", "ünïcödé", "a.qcow2"]}
case! {qcow2_v2_snapshot, "a.qcow2", ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "a.qcow2", "10M"], ["qemu-img", "snapshot", "-c", "s", "a.qcow2"]}
case! {qcow2_chain_3_deep, "sub/top.qcow2", ["mkdir", "sub"], ["qemu-img", "create", "-q", "-f", "raw", "base.raw", "10M"], ["qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "mid.qcow2"], ["qemu-img", "create", "-q", "-f", "qcow2", "-b", "../mid.qcow2", "-F", "qcow2", "sub/top.qcow2"]}
case! {qcow2_chain_v2_over_qcow2, "top.qcow2", ["qemu-img", "create", "-q", "-f", "qcow2", "base.qcow2", "10M"], ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2", "20M"]}
case! {qcow2_data_file, "a.qcow2", ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=a.data", "a.qcow2", "10M"], ["qemu-io", "-c", "write -P 3 0 1M", "a.qcow2"]}
case! {qcow2_data_file_raw, "a.qcow2", ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=a.data,data_file_raw=on", "a.qcow2", "10M"]}
case! {qcow2_bitmaps, "a.qcow2", ["qemu-img", "create", "-q", "-f", "qcow2", "a.qcow2", "10M"], ["qemu-img", "bitmap", "--add", "a.qcow2", "b0"], ["qemu-img", "bitmap", "--add", "-g", "128k", "--disable", "a.qcow2", "b1"]}
case! {qcow2_luks, "a.qcow2", ["qemu-img", "create", "-q", "-f", "qcow2", "--object", "secret,id=s0,data=secret", "-o", "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10", "a.qcow2", "10M"]}
case! {qcow2_luks_cbc_essiv, "a.qcow2", ["qemu-img", "create", "-q", "-f", "qcow2", "--object", "secret,id=s0,data=secret", "-o", "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10,encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha256,encrypt.hash-alg=sha1", "a.qcow2", "10M"]}
case! {qcow2_aes, "a.qcow2", ["qemu-img", "create", "-q", "-f", "qcow2", "--object", "secret,id=s0,data=secret", "-o", "encrypt.format=aes,encrypt.key-secret=s0", "a.qcow2", "10M"]}
// A dirty image: lazy refcounts, and qemu-io aborts after a write, so
// qemu never clears the dirty bit it set.
case! {qcow2_dirty, "a.qcow2", ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", "a.qcow2", "10M"], ["qemu-io!", "-c", "write -P 1 0 64k", "-c", "abort", "a.qcow2"]}
// Other formats, one line each.
case! {vmdk_monolithic_sparse, "a.vmdk", ["qemu-img", "create", "-q", "-f", "vmdk", "a.vmdk", "1G"]}
case! {vmdk_two_gb_sparse, "a.vmdk", ["qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", "a.vmdk", "5G"]}
case! {vmdk_monolithic_flat, "a.vmdk", ["qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", "a.vmdk", "10M"]}
case! {vmdk_stream_optimized, "s.vmdk", ["qemu-img", "create", "-q", "-f", "raw", "a.img", "4M"], ["qemu-io", "-f", "raw", "-c", "write -P 9 0 1M", "a.img"], ["qemu-img", "convert", "-O", "vmdk", "-o", "subformat=streamOptimized", "a.img", "s.vmdk"]}
case! {vdi_dynamic, "a.vdi", ["qemu-img", "create", "-q", "-f", "vdi", "a.vdi", "10M"]}
case! {vpc_dynamic, "a.vhd", ["qemu-img", "create", "-q", "-f", "vpc", "a.vhd", "10M"]}
case! {qcow_v1, "a.qcow", ["qemu-img", "create", "-q", "-f", "qcow", "a.qcow", "10M"]}
case! {vmdk_zeroed_grain_data, "a.vmdk", ["qemu-img", "create", "-q", "-f", "vmdk", "-o", "zeroed_grain=on,adapter_type=lsilogic", "a.vmdk", "100M"], ["qemu-io", "-f", "vmdk", "-c", "write -P 7 1M 256k", "-c", "write -z 4M 1M", "a.vmdk"]}
case! {vmdk_two_gb_flat, "a.vmdk", ["qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentFlat", "a.vmdk", "5G"]}
case! {vmdk_stream_optimized_empty, "a.vmdk", ["qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=streamOptimized", "a.vmdk", "1G"]}
case! {vmdk_backing_chain, "c.vmdk", ["qemu-img", "create", "-q", "-f", "vmdk", "a.vmdk", "64M"], ["qemu-img", "create", "-q", "-f", "vmdk", "-b", "a.vmdk", "-F", "vmdk", "b.vmdk"], ["qemu-img", "create", "-q", "-f", "vmdk", "-b", "b.vmdk", "-F", "vmdk", "c.vmdk"]}
case! {vdi_static_data, "a.vdi", ["qemu-img", "create", "-q", "-f", "vdi", "-o", "static=on", "a.vdi", "10M"], ["qemu-io", "-f", "vdi", "-c", "write -P 5 2M 64k", "a.vdi"]}
case! {vdi_dynamic_data, "a.vdi", ["qemu-img", "create", "-q", "-f", "vdi", "a.vdi", "123456789"], ["qemu-io", "-f", "vdi", "-c", "write -P 5 2M 64k", "a.vdi"]}
case! {vpc_dynamic_data, "a.vhd", ["qemu-img", "create", "-q", "-f", "vpc", "a.vhd", "1G"], ["qemu-io", "-f", "vpc", "-c", "write -P 5 3M 64k", "a.vhd"]}
case! {vpc_fixed_is_raw, "a.vhd", ["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=fixed", "a.vhd", "10M"]}
case! {qcow_v1_on_qcow2, "b.qcow", ["qemu-img", "create", "-q", "-f", "qcow2", "a.qcow2", "10M"], ["qemu-img", "create", "-q", "-f", "qcow", "-b", "a.qcow2", "-F", "qcow2", "b.qcow"], ["qemu-io", "-f", "qcow", "-c", "write -P 3 0 64k", "b.qcow"]}
case! {qcow2_on_vdi_on_vpc, "c.qcow2", ["qemu-img", "create", "-q", "-f", "vpc", "a.vhd", "32M"], ["qemu-img", "create", "-q", "-f", "vdi", "b.vdi", "32M"], ["qemu-img", "create", "-q", "-f", "qcow2", "-b", "b.vdi", "-F", "vdi", "c.qcow2"]}

/// `-f vpc` reads a fixed VHD's footer (probing sees raw).
#[test]
fn vpc_fixed_forced() {
    let dir = tempdir();
    step(
        dir.path(),
        &[
            "qemu-img",
            "create",
            "-q",
            "-f",
            "vpc",
            "-o",
            "subformat=fixed",
            "a.vhd",
            "100M",
        ],
    );
    compare(dir.path(), "a.vhd", &["-f", "vpc"]);
}

/// Images diskforge itself creates are described as qemu-img describes
/// them, for every format.
#[test]
fn diskforge_made_images() {
    let dir = tempdir();
    let made: &[(&str, &[&str])] = &[
        (
            "q.qcow2",
            &[
                "-f",
                "qcow2",
                "-o",
                "preallocation=metadata,cluster_size=4k",
                "q.qcow2",
                "64M",
            ],
        ),
        (
            "v.vmdk",
            &[
                "-f",
                "vmdk",
                "-o",
                "subformat=twoGbMaxExtentSparse",
                "v.vmdk",
                "3G",
            ],
        ),
        ("d.vdi", &["-f", "vdi", "-o", "static=on", "d.vdi", "64M"]),
        ("h.vhd", &["-f", "vpc", "h.vhd", "64M"]),
        (
            "o.qcow",
            &["-f", "qcow", "-b", "q.qcow2", "-F", "qcow2", "o.qcow"],
        ),
    ];
    for (file, args) in made {
        let mut a = vec!["create", "-q"];
        a.extend_from_slice(args);
        diskforge(dir.path(), &a).ok();
        compare(dir.path(), file, &[]);
        compare(dir.path(), file, &["--backing-chain"]);
    }
}

/// A fixed VHD is raw to qemu-img unless `-f vpc` is given.
#[test]
fn fixed_vhd_is_raw_without_f() {
    let dir = tempdir();
    step(
        dir.path(),
        &[
            "qemu-img",
            "create",
            "-q",
            "-f",
            "vpc",
            "-o",
            "subformat=fixed",
            "f.vhd",
            "10M",
        ],
    );
    compare(dir.path(), "f.vhd", &[]);
}

/// `-f raw` on a qcow2 image describes its bytes as raw.
#[test]
fn forced_raw_on_qcow2() {
    let dir = tempdir();
    step(
        dir.path(),
        &["qemu-img", "create", "-q", "-f", "qcow2", "a.qcow2", "10M"],
    );
    compare(dir.path(), "a.qcow2", &["-f", "raw"]);
    compare(dir.path(), "a.qcow2", &["-f", "qcow2", "-U"]);
}

/// A raw file whose length is not a whole number of sectors.
#[test]
fn raw_odd_length() {
    let dir = tempdir();
    std::fs::write(dir.path().join("odd.img"), vec![0x55u8; 1000]).unwrap();
    compare(dir.path(), "odd.img", &[]);
    compare(dir.path(), "./odd.img", &[]);
}

/// A corrupt image, marked so by qemu itself: the active L1 entry is
/// pointed at the refcount table, and qemu-io's next write makes qemu
/// detect the overlap and set the corrupt bit.
#[test]
fn qcow2_corrupt_bit_set_by_qemu() {
    use std::os::unix::fs::FileExt;
    let dir = tempdir();
    step(
        dir.path(),
        &["qemu-img", "create", "-q", "-f", "qcow2", "c.qcow2", "10M"],
    );
    step(
        dir.path(),
        &["qemu-io", "-c", "write -P 1 0 64k", "c.qcow2"],
    );
    let path = dir.path().join("c.qcow2");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut h = [0u8; 64];
    f.read_exact_at(&mut h, 0).unwrap();
    let l1 = u64::from_be_bytes(h[40..48].try_into().unwrap());
    let reftable = u64::from_be_bytes(h[48..56].try_into().unwrap());
    f.write_all_at(&((1u64 << 63) | reftable).to_be_bytes(), l1)
        .unwrap();
    drop(f);
    let r = qemu_io(dir.path(), &["-c", "write -P 2 0 64k", "c.qcow2"]);
    assert!(r.stderr.contains("Marking image as corrupt"), "{r:#?}");
    compare(dir.path(), "c.qcow2", &[]);
    let d = diskforge(dir.path(), &["info", "c.qcow2"]).ok();
    assert!(d.stdout.contains("corrupt: true"));
}

/// A broken backing chain is an error for `--backing-chain` (as in
/// qemu-img), but not for plain `info`.
#[test]
fn broken_backing_chain() {
    let dir = tempdir();
    step(
        dir.path(),
        &[
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-u",
            "-b",
            "gone.qcow2",
            "-F",
            "qcow2",
            "t.qcow2",
            "1M",
        ],
    );
    compare(dir.path(), "t.qcow2", &[]);
    for out in ["--output=json", "--output=human"] {
        let q = qemu_img(dir.path(), &["info", out, "--backing-chain", "t.qcow2"]);
        let d = diskforge(dir.path(), &["info", out, "--backing-chain", "t.qcow2"]);
        assert_eq!(q.code, 1);
        assert_eq!(d.code, 1, "{d:#?}");
        assert_eq!(d.stdout, "");
        assert_eq!(d.stderr.lines().count(), 1, "{d:#?}");
        assert!(d.stderr.contains("gone.qcow2"), "{d:#?}");
    }
}

/// A chain that comes back to itself is refused, not followed forever.
#[test]
fn backing_chain_loop() {
    let dir = tempdir();
    step(
        dir.path(),
        &["qemu-img", "create", "-q", "-f", "qcow2", "a.qcow2", "1M"],
    );
    step(
        dir.path(),
        &[
            "qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "a.qcow2", "-F", "qcow2",
            "b.qcow2", "1M",
        ],
    );
    step(
        dir.path(),
        &[
            "qemu-img", "rebase", "-u", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", "a.qcow2",
        ],
    );
    let d = diskforge(dir.path(), &["info", "--backing-chain", "a.qcow2"]);
    assert_eq!(d.code, 1, "{d:#?}");
    assert!(d.stderr.contains("infinite loop"), "{d:#?}");
}

/// `create -b` takes the size from the backing image through the
/// readers (qcow2 and raw here).
#[test]
fn create_takes_backing_size_from_reader() {
    let dir = tempdir();
    step(
        dir.path(),
        &["qemu-img", "create", "-q", "-f", "qcow2", "b.qcow2", "7M"],
    );
    std::fs::write(dir.path().join("odd.img"), vec![0u8; 1000]).unwrap();
    diskforge(
        dir.path(),
        &[
            "create", "-q", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", "t.qcow2",
        ],
    )
    .ok();
    diskforge(
        dir.path(),
        &[
            "create", "-q", "-f", "qcow2", "-b", "odd.img", "-F", "raw", "u.qcow2",
        ],
    )
    .ok();
    qemu_img(
        dir.path(),
        &[
            "create", "-q", "-f", "qcow2", "-b", "odd.img", "-F", "raw", "v.qcow2",
        ],
    )
    .ok();
    let t = common::qemu_info_json(dir.path(), "t.qcow2", &[]);
    assert_eq!(t["virtual-size"], 7 << 20);
    let u = common::qemu_info_json(dir.path(), "u.qcow2", &[]);
    let v = common::qemu_info_json(dir.path(), "v.qcow2", &[]);
    assert_eq!(u["virtual-size"], v["virtual-size"]);
}

/// Usage and open errors: one line, the right exit status.
#[test]
fn errors_are_one_line() {
    let dir = tempdir();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    for (args, code) in [
        (vec!["info", "missing.img"], 1),
        (vec!["info", "d"], 1),
        (vec!["info", "-f", "nope", "x"], 2),
        (vec!["info", "--output=xml", "x"], 2),
        (vec!["info", "--image-opts", "driver=file,filename=x"], 2),
        (vec!["info"], 2),
    ] {
        let d = diskforge(dir.path(), &args);
        assert_eq!(d.code, code, "{args:?}: {d:#?}");
        assert_eq!(d.stdout, "", "{args:?}");
        assert_eq!(d.stderr.lines().count(), 1, "{args:?}: {d:#?}");
    }
    let d = diskforge(dir.path(), &["info", "missing.img"]);
    assert_eq!(
        d.stderr,
        "diskforge: Could not open 'missing.img': Could not open 'missing.img': No such file or directory\n"
    );
}

// ---------------------------------------------------------------------
// Rendering alone, for every format qemu-img can create: qemu-img's own
// JSON is read back into the info model, and diskforge's JSON and human
// renderings of that model must be qemu-img's outputs exactly. This
// checks the printing of vmdk extents, vdi, vpc and qcow independently
// of their readers.

fn int(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn opt_str(v: &Value, k: &str) -> Option<String> {
    v.get(k).map(|s| s.as_str().unwrap().to_string())
}

/// qemu's JSON for one node, back in the model.
fn model_from_qemu(v: &Value) -> ImageInfo {
    ImageInfo {
        filename: v["filename"].as_str().unwrap().to_string(),
        format: v["format"].as_str().unwrap().to_string(),
        virtual_size: int(&v["virtual-size"]),
        actual_size: v.get("actual-size").map(int),
        cluster_size: v.get("cluster-size").map(int),
        dirty_flag: v.get("dirty-flag").map(|b| b.as_bool().unwrap()),
        encrypted: v.get("encrypted").map(|b| b.as_bool().unwrap()),
        compressed: v.get("compressed").map(|b| b.as_bool().unwrap()),
        backing_filename: opt_str(v, "backing-filename"),
        full_backing_filename: opt_str(v, "full-backing-filename"),
        backing_filename_format: opt_str(v, "backing-filename-format"),
        snapshots: v
            .get("snapshots")
            .map(|l| {
                l.as_array()
                    .unwrap()
                    .iter()
                    .map(|s| SnapshotInfo {
                        id: s["id"].as_str().unwrap().to_string(),
                        name: s["name"].as_str().unwrap().to_string(),
                        vm_state_size: int(&s["vm-state-size"]),
                        date_sec: int(&s["date-sec"]),
                        date_nsec: int(&s["date-nsec"]) as u32,
                        vm_clock_sec: int(&s["vm-clock-sec"]),
                        vm_clock_nsec: int(&s["vm-clock-nsec"]) as u32,
                        icount: s.get("icount").map(int),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        format_specific: v.get("format-specific").map(|fs| {
            let data = &fs["data"];
            match fs["type"].as_str().unwrap() {
                "file" => FormatSpecific::File,
                "vmdk" => FormatSpecific::Vmdk(VmdkSpecific {
                    create_type: data["create-type"].as_str().unwrap().to_string(),
                    cid: int(&data["cid"]) as u32,
                    parent_cid: int(&data["parent-cid"]) as u32,
                    extents: data["extents"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(model_from_qemu)
                        .collect(),
                }),
                other => panic!("format-specific type {other} not handled by this test"),
            }
        }),
        children: v
            .get("children")
            .map(|c| {
                c.as_array()
                    .unwrap()
                    .iter()
                    .map(|c| ChildInfo {
                        name: c["name"].as_str().unwrap().to_string(),
                        info: model_from_qemu(&c["info"]),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn check_rendering(dir: &Path, file: &str) {
    let json = qemu_img(dir, &["info", "--output=json", file]).ok().stdout;
    let human = qemu_img(dir, &["info", file]).ok().stdout;
    let model = model_from_qemu(&serde_json::from_str(&json).unwrap());
    let mut out = Vec::new();
    write_json(&mut out, &model).unwrap();
    let ours = String::from_utf8(out).unwrap();
    assert!(
        ours == json,
        "{file} JSON: {}",
        first_line_diff(&json, &ours)
    );
    let mut out = Vec::new();
    write_human(&mut out, &model).unwrap();
    let ours = String::from_utf8(out).unwrap();
    assert!(
        ours == human,
        "{file} human: {}\n{ours}",
        first_line_diff(&human, &ours)
    );
}

#[test]
fn rendering_of_every_format_matches_qemu() {
    let dir = tempdir();
    let d = dir.path();
    let images: &[(&str, &[&str])] = &[
        ("m.vmdk", &["-f", "vmdk", "m.vmdk", "1G"]),
        (
            "t.vmdk",
            &[
                "-f",
                "vmdk",
                "-o",
                "subformat=twoGbMaxExtentSparse",
                "t.vmdk",
                "5G",
            ],
        ),
        (
            "mf.vmdk",
            &[
                "-f",
                "vmdk",
                "-o",
                "subformat=monolithicFlat",
                "mf.vmdk",
                "10M",
            ],
        ),
        (
            "tf.vmdk",
            &[
                "-f",
                "vmdk",
                "-o",
                "subformat=twoGbMaxExtentFlat",
                "tf.vmdk",
                "3G",
            ],
        ),
        (
            "so.vmdk",
            &[
                "-f",
                "vmdk",
                "-o",
                "subformat=streamOptimized",
                "so.vmdk",
                "10M",
            ],
        ),
        (
            "z.vmdk",
            &[
                "-f",
                "vmdk",
                "-o",
                "zeroed_grain=on,adapter_type=lsilogic",
                "z.vmdk",
                "10M",
            ],
        ),
        (
            "c.vmdk",
            &["-f", "vmdk", "-b", "m.vmdk", "-F", "vmdk", "c.vmdk"],
        ),
        ("a.vdi", &["-f", "vdi", "a.vdi", "10M"]),
        ("s.vdi", &["-f", "vdi", "-o", "static=on", "s.vdi", "10M"]),
        ("a.vhd", &["-f", "vpc", "a.vhd", "10M"]),
        ("a.qcow", &["-f", "qcow", "a.qcow", "10M"]),
        (
            "b.qcow",
            &["-f", "qcow", "-b", "a.qcow", "-F", "qcow", "b.qcow"],
        ),
        ("r.img", &["-f", "raw", "r.img", "10M"]),
    ];
    for (file, args) in images {
        let mut a = vec!["create", "-q"];
        a.extend_from_slice(args);
        qemu_img(d, &a).ok();
        check_rendering(d, file);
    }
}

/// Snapshot fields that only a running VM sets (VM state size, VM clock,
/// icount), written into a snapshot made by qemu-img: qemu-img's own
/// reading of the result is the reference.
#[test]
fn qcow2_snapshot_with_vm_state() {
    use std::os::unix::fs::FileExt;
    let dir = tempdir();
    step(
        dir.path(),
        &["qemu-img", "create", "-q", "-f", "qcow2", "a.qcow2", "10M"],
    );
    step(
        dir.path(),
        &["qemu-img", "snapshot", "-c", "running", "a.qcow2"],
    );
    step(
        dir.path(),
        &["qemu-img", "snapshot", "-c", "second", "a.qcow2"],
    );
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.path().join("a.qcow2"))
        .unwrap();
    let mut h = [0u8; 72];
    f.read_exact_at(&mut h, 0).unwrap();
    let table = u64::from_be_bytes(h[64..72].try_into().unwrap());
    // First entry: date, VM clock 1:02:03.456, 32-bit and 64-bit VM state
    // sizes, icount.
    f.write_all_at(&1_000_000_000u32.to_be_bytes(), table + 16)
        .unwrap();
    f.write_all_at(&5u32.to_be_bytes(), table + 20).unwrap();
    f.write_all_at(&3_723_456_000_000u64.to_be_bytes(), table + 24)
        .unwrap();
    f.write_all_at(&12345u32.to_be_bytes(), table + 32).unwrap();
    f.write_all_at(&(5u64 << 30).to_be_bytes(), table + 40)
        .unwrap();
    f.write_all_at(&987_654u64.to_be_bytes(), table + 56)
        .unwrap();
    drop(f);
    compare(dir.path(), "a.qcow2", &[]);
}

/// A truncated image whose snapshot table lies past the end: qemu reads
/// zeros there (empty names, no icount: `--`), and so does diskforge.
#[test]
fn qcow2_truncated_snapshot_table() {
    let dir = tempdir();
    step(
        dir.path(),
        &["qemu-img", "create", "-q", "-f", "qcow2", "a.qcow2", "10M"],
    );
    step(
        dir.path(),
        &["qemu-img", "snapshot", "-c", "one", "a.qcow2"],
    );
    step(
        dir.path(),
        &["qemu-img", "snapshot", "-c", "two", "a.qcow2"],
    );
    let b = std::fs::read(dir.path().join("a.qcow2")).unwrap();
    std::fs::write(dir.path().join("t.qcow2"), &b[..300]).unwrap();
    compare(dir.path(), "t.qcow2", &[]);
}

/// A snapshot entry as qemu before 1.1 wrote it (no extra data: no 64-bit
/// VM state size, no disk size, no icount), put into an image made by
/// qemu-img: a new snapshot table at the end of the file replaces the
/// one qemu-img wrote. qemu-img's reading of it is the reference.
#[test]
fn qcow2_snapshot_without_extra_data() {
    use std::os::unix::fs::FileExt;
    let dir = tempdir();
    step(
        dir.path(),
        &[
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "compat=0.10",
            "a.qcow2",
            "10M",
        ],
    );
    step(
        dir.path(),
        &["qemu-img", "snapshot", "-c", "old", "a.qcow2"],
    );
    let path = dir.path().join("a.qcow2");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut h = [0u8; 72];
    f.read_exact_at(&mut h, 0).unwrap();
    let old_table = u64::from_be_bytes(h[64..72].try_into().unwrap());
    let mut entry = [0u8; 40];
    f.read_exact_at(&mut entry, old_table).unwrap();
    entry[12..14].copy_from_slice(&1u16.to_be_bytes()); // id "1"
    entry[14..16].copy_from_slice(&7u16.to_be_bytes()); // name "ancient"
    entry[32..36].copy_from_slice(&4096u32.to_be_bytes()); // VM state
    entry[36..40].copy_from_slice(&0u32.to_be_bytes()); // no extra data
    let mut table = entry.to_vec();
    table.extend_from_slice(b"1ancient");
    let len = std::fs::metadata(&path).unwrap().len();
    let new_table = len.div_ceil(65536) * 65536;
    f.write_all_at(&table, new_table).unwrap();
    f.write_all_at(&new_table.to_be_bytes(), 64).unwrap();
    drop(f);
    compare(dir.path(), "a.qcow2", &[]);
    let d = diskforge(dir.path(), &["info", "a.qcow2"]).ok();
    assert!(d.stdout.contains("ancient"), "{}", d.stdout);
}

/// File names are bytes: qemu prints them raw in human output and
/// decodes them its own way in JSON (U+FFFD for invalid sequences,
/// `\u` escapes for everything outside printable ASCII).
#[test]
fn non_utf8_and_unicode_file_names() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempdir();
    let names: [&[u8]; 3] = [
        b"we\"ir\\d\t\xc3\xa9\xe2\x82\xac.img",
        b"b\xff\xe2\x82ad.img",
        b"x\xc0\x80y.img",
    ];
    for raw in names {
        let name = OsStr::from_bytes(raw);
        std::fs::write(dir.path().join(name), b"").unwrap();
        for output in ["--output=json", "--output=human"] {
            let run = |prog: &Path, first: &[&str]| {
                std::process::Command::new(prog)
                    .args(first)
                    .arg(output)
                    .arg(name)
                    .current_dir(dir.path())
                    .output()
                    .unwrap()
            };
            let q = run(&common::qemu_tool("qemu-img"), &["info"]);
            let d = run(&common::diskforge_bin(), &["info"]);
            assert!(q.status.success() && d.status.success(), "{name:?}");
            assert!(
                q.stdout == d.stdout,
                "{name:?} {output}: {}",
                first_line_diff(
                    &String::from_utf8_lossy(&q.stdout),
                    &String::from_utf8_lossy(&d.stdout)
                )
            );
        }
    }
}
