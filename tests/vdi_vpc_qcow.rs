//! vdi, vpc/vhd and qcow v1: diskforge's images against the ones the real
//! qemu-img writes with the same arguments (byte for byte, masking only the
//! fields qemu fills at random or from the clock), read back by qemu
//! (`qemu-img info`, `check`, `compare`, data written by `qemu-io`), the
//! readers against `qemu-img info`, `--reproducible`, the error cases, and
//! hostile headers handcrafted from qemu-made images.

mod common;

use common::*;
use diskforge::Error;
use diskforge::format::{self, Format};
use diskforge::qapi::ImageInfo;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// vdi: image UUID and last-snapshot UUID (random in qemu).
const VDI_RANDOM: Range<usize> = 0x188..0x1a8;
/// vpc footer: timestamp (clock).
const VPC_TIMESTAMP: Range<usize> = 24..28;
/// vpc footer: checksum and unique id (random UUID, and so the checksum).
const VPC_CHECKSUM_AND_UUID: Range<usize> = 64..84;
/// Offset of the VHD epoch (2000-01-01) in Unix time.
const VHD_EPOCH: u64 = 946_684_800;

/// Files at most this long are compared whole; longer ones (sparse fixed
/// VHDs, static VDIs) by their length, allocation and both ends.
const WHOLE_COMPARE_LIMIT: u64 = 64 << 20;
const END_BYTES: u64 = 1 << 20;

fn ext(fmt: &str) -> &str {
    match fmt {
        "vhd" => "vpc",
        f => f,
    }
}

/// Creates the same image with qemu-img (`q.EXT`) and diskforge (`d.EXT`).
fn create_both(dir: &Path, fmt: &str, opts: &str, size: &str) -> (String, String) {
    let e = ext(fmt);
    let (q, d) = (format!("q.{e}"), format!("d.{e}"));
    let qfmt = if fmt == "vhd" { "vpc" } else { fmt };
    let build = |fmt: &str, name: &str| -> Vec<String> {
        let mut a: Vec<String> = vec!["create".into(), "-q".into(), "-f".into(), fmt.into()];
        if !opts.is_empty() {
            a.push("-o".into());
            a.push(opts.into());
        }
        a.push(name.into());
        if !size.is_empty() {
            a.push(size.into());
        }
        a
    };
    let qa = build(qfmt, &q);
    let da = build(fmt, &d);
    let qa: Vec<&str> = qa.iter().map(String::as_str).collect();
    let da: Vec<&str> = da.iter().map(String::as_str).collect();
    qemu_img(dir, &qa).ok();
    diskforge(dir, &da).ok();
    (q, d)
}

/// Byte ranges to ignore when comparing two images of format `fmt` whose
/// length is `len`.
fn random_ranges(fmt: &str, len: u64) -> Vec<Range<u64>> {
    let r = |r: Range<usize>, base: u64| (base + r.start as u64)..(base + r.end as u64);
    match ext(fmt) {
        "vdi" => vec![r(VDI_RANDOM, 0)],
        "vpc" => {
            let end = len.saturating_sub(512);
            vec![
                r(VPC_TIMESTAMP, 0),
                r(VPC_CHECKSUM_AND_UUID, 0),
                r(VPC_TIMESTAMP, end),
                r(VPC_CHECKSUM_AND_UUID, end),
            ]
        }
        _ => vec![],
    }
}

fn read_range(path: &Path, at: u64, len: u64) -> Vec<u8> {
    let f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, at).unwrap();
    buf
}

/// Asserts that two images are equal outside the random/clock fields, and
/// equally allocated.
fn assert_masked_equal(dir: &Path, fmt: &str, q: &str, d: &str, what: &str) {
    let (qp, dp) = (dir.join(q), dir.join(d));
    let (ql, dl) = (
        std::fs::metadata(&qp).unwrap().len(),
        std::fs::metadata(&dp).unwrap().len(),
    );
    assert_eq!(ql, dl, "{what}: file length");
    assert_eq!(
        allocated_bytes(&qp),
        allocated_bytes(&dp),
        "{what}: allocated bytes"
    );
    let pieces: Vec<(u64, u64)> = if ql <= WHOLE_COMPARE_LIMIT {
        vec![(0, ql)]
    } else {
        vec![(0, END_BYTES), (ql - END_BYTES, END_BYTES)]
    };
    let masks = random_ranges(fmt, ql);
    for (at, len) in pieces {
        let mut a = read_range(&qp, at, len);
        let mut b = read_range(&dp, at, len);
        for m in &masks {
            for off in m.clone() {
                if off >= at && off < at + len {
                    a[(off - at) as usize] = 0;
                    b[(off - at) as usize] = 0;
                }
            }
        }
        if let Some(i) = first_difference(&a, &b) {
            panic!(
                "{what}: first difference at byte 0x{:x}: qemu {:02x?} diskforge {:02x?}",
                at + i as u64,
                &a[i..(i + 16).min(a.len())],
                &b[i..(i + 16).min(b.len())]
            );
        }
    }
}

/// `qemu-img info --output=json` of both images equal but for the name.
fn assert_info_equal(dir: &Path, q: &str, d: &str, extra: &[&str], what: &str) {
    let a = without_keys(qemu_info_json(dir, q, extra), &["filename"]);
    let b = without_keys(qemu_info_json(dir, d, extra), &["filename"]);
    assert_eq!(a, b, "{what}: qemu-img info");
}

/// The reader's model against qemu-img info's JSON for the same file.
fn assert_reader_matches(dir: &Path, file: &str, fmt: Format, extra: &[&str], what: &str) {
    let json = qemu_info_json(dir, file, extra);
    let path = dir.join(file);
    let info: ImageInfo = match fmt {
        Format::Vdi => format::vdi::inspect(&path),
        Format::Vpc => format::vpc::inspect(&path),
        Format::Qcow => format::qcow::inspect(&path),
        _ => unreachable!(),
    }
    .unwrap_or_else(|e| panic!("{what}: inspect failed: {e}"));
    assert_eq!(json["format"], info.format.as_str(), "{what}: format");
    assert_eq!(
        json["virtual-size"].as_u64(),
        Some(info.virtual_size),
        "{what}: virtual-size"
    );
    assert_eq!(
        json["cluster-size"].as_u64(),
        info.cluster_size,
        "{what}: cluster-size"
    );
    assert_eq!(
        json["dirty-flag"].as_bool(),
        info.dirty_flag,
        "{what}: dirty-flag"
    );
    assert_eq!(
        json["backing-filename"].as_str(),
        info.backing_filename.as_deref(),
        "{what}: backing-filename"
    );
    assert_eq!(
        json["encrypted"].as_bool(),
        info.encrypted,
        "{what}: encrypted"
    );
    // full-backing-filename is relative to the name the image was opened
    // by: both opened it as `file` in `dir`.
    let full = info.full_backing_filename.as_deref().map(|f| {
        f.strip_prefix(&format!("{}/", dir.display()))
            .unwrap_or(f)
            .to_string()
    });
    assert_eq!(
        json["full-backing-filename"].as_str(),
        full.as_deref(),
        "{what}: full-backing-filename"
    );
    assert!(
        json.get("format-specific").is_none(),
        "{what}: no format-specific"
    );
    assert_eq!(
        format::virtual_size(&path, fmt).unwrap(),
        info.virtual_size,
        "{what}: format::virtual_size"
    );
}

// ---------------------------------------------------------------- vdi

const VDI_SIZES: &[&str] = &[
    "0",
    "1",
    "512",
    "1M",
    "1048577",
    "10M",
    "123456789",
    "4294967301", // 4G+5
    "64G",
];

#[test]
fn vdi_matches_qemu_img_for_every_option_and_size() {
    let dir = tempdir();
    let d = dir.path();
    for size in VDI_SIZES {
        for opts in [
            "",
            "static=off",
            "static=on",
            "preallocation=falloc",
            "static=on,preallocation=full",
        ] {
            let what = format!("vdi -o '{opts}' {size}");
            let (q, df) = create_both(d, "vdi", opts, size);
            assert_masked_equal(d, "vdi", &q, &df, &what);
            assert_info_equal(d, &q, &df, &[], &what);
            let check = qemu_img(d, &["check", &df]);
            assert_eq!(check.code, 0, "{what}: qemu-img check: {check:#?}");
            assert_reader_matches(d, &df, Format::Vdi, &[], &what);
            assert_reader_matches(d, &q, Format::Vdi, &[], &what);
        }
    }
}

#[test]
fn vdi_uuids_are_random_and_in_guid_order() {
    let dir = tempdir();
    let d = dir.path();
    diskforge(d, &["create", "-q", "-f", "vdi", "a.vdi", "1M"]).ok();
    diskforge(d, &["create", "-q", "-f", "vdi", "b.vdi", "1M"]).ok();
    let a = read(&d.join("a.vdi"));
    let b = read(&d.join("b.vdi"));
    assert_ne!(a[VDI_RANDOM], b[VDI_RANDOM], "random UUIDs differ");
    for img in [&a, &b] {
        let image = &img[0x188..0x198];
        let snap = &img[0x198..0x1a8];
        assert_ne!(image, snap);
        for u in [image, snap] {
            // GUID order: the version nibble is the high nibble of byte 7.
            assert_eq!(u[7] >> 4, 4, "version 4 UUID in GUID byte order");
            assert_eq!(u[8] >> 6, 2, "RFC 4122 variant");
        }
    }
}

// ---------------------------------------------------------------- vpc

/// Sizes around the CHS algorithm's thresholds: 4 heads × 17 sectors,
/// 16 × 17, 16 × 31, 16 × 63 (65535 × 16 × 63 sectors), the largest
/// geometry 65535 × 16 × 255 sectors (above it the size is exact), odd
/// sizes and the 2040 GiB limit.
const VPC_SIZES: &[&str] = &[
    "0",
    "1",
    "1k",
    "1M",
    "10M",
    "100M",
    "1G",
    "123456789",
    "4294967301",
    "35651584",  // 4 × 1024 × 17 × 512
    "142606336", // 16 × 1024 × 17 × 512
    "142606337",
    "260046848", // 16 × 1024 × 31 × 512
    "260047360",
    "33818902016", // 65535 × 16 × 63 × 512 - 512
    "33818902528", // 65535 × 16 × 63 × 512
    "33818903040",
    "127G",
    "136899993088", // 65535 × 16 × 255 × 512 - 512
    "136899993600", // 65535 × 16 × 255 × 512
    "136899994112",
    "200G",
    "2040G",
];

#[test]
fn vpc_matches_qemu_img_for_every_option_and_size() {
    let dir = tempdir();
    let d = dir.path();
    for size in VPC_SIZES {
        for opts in [
            "",
            "subformat=dynamic",
            "subformat=fixed",
            "force_size=on",
            "subformat=fixed,force_size=on",
            "subformat=dynamic,force_size=off,preallocation=full",
            "subformat=fixed,preallocation=falloc",
        ] {
            let what = format!("vpc -o '{opts}' {size}");
            let (q, df) = create_both(d, "vpc", opts, size);
            assert_masked_equal(d, "vpc", &q, &df, &what);
            if *size == "0" && opts.contains("fixed") {
                // A fixed VHD of size 0 is only its footer, at offset 0:
                // qemu takes it for a dynamic disk and cannot open it.
                for f in [&q, &df] {
                    assert_ne!(qemu_img(d, &["info", f]).code, 0, "{what}");
                    assert!(format::vpc::inspect(&d.join(f)).is_err(), "{what}");
                }
                continue;
            }
            assert_info_equal(d, &q, &df, &[], &what);
            assert_info_equal(d, &q, &df, &["-f", "vpc"], &what);
            assert_reader_matches(d, &df, Format::Vpc, &["-f", "vpc"], &what);
            assert_reader_matches(d, &q, Format::Vpc, &["-f", "vpc"], &what);
            let _ = std::fs::remove_file(d.join(&q));
            let _ = std::fs::remove_file(d.join(&df));
        }
    }
}

#[test]
fn vpc_virtual_sizes_are_qemus() {
    // The examples of the issue, read back by qemu-img.
    let dir = tempdir();
    let d = dir.path();
    for (size, opts, expect) in [
        ("1G", "", 1073995776u64),
        ("100M", "", 104865792),
        ("1G", "force_size=on", 1073741824),
        ("123456789", "force_size=on", 123457024),
        ("200G", "", 200 << 30),
        ("1G", "subformat=fixed", 1073995776),
    ] {
        let mut args = vec!["create", "-q", "-f", "vhd"];
        if !opts.is_empty() {
            args.extend(["-o", opts]);
        }
        args.extend(["x.vhd", size]);
        diskforge(d, &args).ok();
        let j = qemu_info_json(d, "x.vhd", &["-f", "vpc"]);
        assert_eq!(j["virtual-size"].as_u64(), Some(expect), "{size} {opts}");
    }
}

/// Runs diskforge with `args` in `dir`, its stderr a pseudo-terminal (as
/// for a person at a terminal); returns the exit status and what it
/// wrote there.
fn diskforge_on_terminal(dir: &Path, args: &[&str]) -> (i32, String) {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors through valid pointers; the
    // name, termios and winsize arguments may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned here only.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let status = std::process::Command::new(diskforge_bin())
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(slave))
        .status()
        .expect("run diskforge");
    let mut text = Vec::new();
    // The child is gone and the slave closed: reading ends with EIO.
    let _ = std::fs::File::from(master).read_to_end(&mut text);
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&text).into_owned(),
    )
}

fn refs(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

/// The Azure advice for a fixed VHD whose size is not whole MiB: shown
/// on a terminal only, never with `-q`, and never where qemu-img is silent
/// (stderr a pipe or file: Glance and GNS3 read any output there as a
/// failure).
#[test]
fn vpc_fixed_azure_advice_only_on_a_terminal() {
    let dir = tempdir();
    let d = dir.path();
    let create = |quiet: bool, opts: &str, size: &str| -> Vec<String> {
        let mut a = vec!["create".to_string()];
        if quiet {
            a.push("-q".into());
        }
        a.extend(["-f", "vpc", "-o", opts, "f.vhd", size].map(String::from));
        a
    };
    // (name, options, size, advice expected on a terminal without -q)
    let cases = [
        (
            "fixed, CHS-rounded 1G",
            "subformat=fixed",
            "1G",
            Some("force_size=on"),
        ),
        (
            "fixed, forced odd size",
            "subformat=fixed,force_size=on",
            "123456789",
            Some("whole number of MiB"),
        ),
        (
            "fixed, forced whole MiB",
            "subformat=fixed,force_size=on",
            "1G",
            None,
        ),
        ("dynamic", "subformat=dynamic", "1G", None),
    ];
    for (name, opts, size, advice) in cases {
        for quiet in [false, true] {
            let args = create(quiet, opts, size);
            // Not a terminal: exactly qemu-img's (empty) stderr.
            let r = diskforge(d, &refs(&args)).ok();
            let q = qemu_img(d, &refs(&args)).ok();
            assert_eq!(r.stderr, q.stderr, "{name} (quiet={quiet}): stderr");
            assert_eq!(r.stderr, "", "{name} (quiet={quiet})");
            // A terminal: the advice, one line, unless -q.
            let (code, text) = diskforge_on_terminal(d, &refs(&args));
            assert_eq!(code, 0, "{name}: {text}");
            match advice {
                Some(word) if !quiet => {
                    assert!(
                        text.contains("Azure") && text.contains(word),
                        "{name}: advice expected: {text:?}"
                    );
                    assert_eq!(text.trim_end().lines().count(), 1, "{name}: {text:?}");
                }
                _ => assert_eq!(text, "", "{name} (quiet={quiet}): nothing expected"),
            }
        }
    }
}

// ---------------------------------------------------------------- qcow

const QCOW_SIZES: &[&str] = &["1", "512", "1M", "10M", "123456789", "4294967301", "64G"];

#[test]
fn qcow_matches_qemu_img_with_and_without_backing_file() {
    let dir = tempdir();
    let d = dir.path();
    qemu_img(d, &["create", "-q", "-f", "raw", "base.raw", "3M"]).ok();
    qemu_img(d, &["create", "-q", "-f", "qcow2", "base.qcow2", "5M"]).ok();
    for size in QCOW_SIZES {
        for opts in [
            "",
            "preallocation=full",
            "backing_file=base.raw,backing_fmt=raw",
            "backing_file=base.qcow2,backing_fmt=qcow2",
        ] {
            let what = format!("qcow -o '{opts}' {size}");
            let (q, df) = create_both(d, "qcow", opts, size);
            assert_masked_equal(d, "qcow", &q, &df, &what);
            assert_info_equal(d, &q, &df, &[], &what);
            assert_reader_matches(d, &df, Format::Qcow, &[], &what);
            let r = qemu_img(d, &["check", &df]);
            assert_eq!(r.code, 63, "qemu-img check does not support qcow: {r:#?}");
        }
    }
    // Size from the backing file; -b/-F; -u with a missing, long name.
    // The backing image's size is read by this module's readers too.
    qemu_img(d, &["create", "-q", "-f", "vdi", "base.vdi", "123456789"]).ok();
    qemu_img(
        d,
        &[
            "create",
            "-q",
            "-f",
            "vpc",
            "-o",
            "subformat=fixed",
            "fixed.vhd",
            "100M",
        ],
    )
    .ok();
    qemu_img(d, &["create", "-q", "-f", "vpc", "dyn.vhd", "1G"]).ok();
    qemu_img(d, &["create", "-q", "-f", "qcow", "base.qcow", "77M"]).ok();
    let cases: [(&[&str], Option<&str>); 7] = [
        (&["-b", "base.qcow2", "-F", "qcow2"], None),
        (&["-b", "base.vdi", "-F", "vdi"], None),
        (&["-b", "fixed.vhd", "-F", "vpc"], None),
        (&["-b", "dyn.vhd", "-F", "vpc"], None),
        (&["-b", "base.qcow", "-F", "qcow"], None),
        (&["-b", "base.raw", "-F", "raw"], Some("7M")),
        (
            &[
                "-u",
                "-b",
                "no/such/dir/very-long-backing-file-name.img",
                "-F",
                "raw",
            ],
            Some("1G"),
        ),
    ];
    for (flags, size) in cases {
        let what = format!("qcow {flags:?} {size:?}");
        for name in ["q.qcow", "d.qcow"] {
            let mut a = vec!["create", "-q", "-f", "qcow"];
            a.extend_from_slice(flags);
            a.push(name);
            a.extend(size);
            if name.starts_with('q') {
                qemu_img(d, &a).ok();
            } else {
                diskforge(d, &a).ok();
            }
        }
        assert_masked_equal(d, "qcow", "q.qcow", "d.qcow", &what);
        if !flags.contains(&"-u") {
            assert_info_equal(d, "q.qcow", "d.qcow", &[], &what);
            assert_reader_matches(d, "d.qcow", Format::Qcow, &[], &what);
        }
    }
}

/// A backing name with a protocol prefix is shown as it is, with no
/// `(actual path: ...)` line, as qemu-img shows it (qemu's
/// `path_has_protocol`), whatever directory the image is in.
#[test]
fn protocol_backing_names_have_no_actual_path() {
    let dir = tempdir();
    let d = dir.path();
    std::fs::create_dir(d.join("sub")).unwrap();
    // (format, image, backing name)
    let cases = [
        ("qcow", "sub/nbd.qcow", "nbd:localhost:10809"),
        ("qcow2", "sub/nbd.qcow2", "nbd:localhost:10809"),
        ("qcow", "sub/plain.qcow", "base.raw"),
        ("qcow", "sub/colon.qcow", "dir/x:y.raw"),
    ];
    for (fmt, image, backing) in cases {
        qemu_img(
            d,
            &[
                "create", "-q", "-f", fmt, "-u", "-b", backing, "-F", "raw", image, "1M",
            ],
        )
        .ok();
        for output in ["human", "json"] {
            let what = format!("{fmt} {image} -b {backing} --output={output}");
            let args = ["info", "-U", "--output", output, image];
            let q = qemu_img(d, &args).ok();
            let df = diskforge(d, &args).ok();
            assert_eq!(df.stdout, q.stdout, "{what}");
        }
        let human = diskforge(d, &["info", image]).ok().stdout;
        assert_eq!(
            human.contains("actual path"),
            !backing.starts_with("nbd:"),
            "{fmt} {image}: {human}"
        );
    }
}

// ------------------------------------------------------- data round trip

/// Data written by qemu-io into diskforge's image reads back intact
/// (`qemu-img compare` against a raw image given the same writes).
#[test]
fn data_written_by_qemu_io_reads_back() {
    let dir = tempdir();
    let d = dir.path();
    let writes = [
        "write -P 0x5a 0 1M",
        "write -P 0xa5 3M 512k",
        "write -P 0x33 5632k 4k",
        "write -P 0x77 8191k 1k",
    ];
    let cases: &[(&str, &str)] = &[
        ("vdi", ""),
        ("vdi", "static=on"),
        ("vpc", "subformat=dynamic"),
        ("vpc", "subformat=fixed"),
        ("vpc", "subformat=fixed,force_size=on"),
        ("vhd", "force_size=on"),
        ("qcow", ""),
    ];
    for (fmt, opts) in cases {
        let what = format!("{fmt} {opts}");
        let img = format!("img.{}", ext(fmt));
        let mut a = vec!["create", "-q", "-f", fmt];
        if !opts.is_empty() {
            a.extend(["-o", opts]);
        }
        a.extend([img.as_str(), "8M"]);
        diskforge(d, &a).ok();
        let qfmt = ext(fmt);
        // The raw reference has the image's (possibly CHS-rounded) size.
        let size = qemu_info_json(d, &img, &["-f", qfmt])["virtual-size"]
            .as_u64()
            .unwrap()
            .to_string();
        qemu_img(d, &["create", "-q", "-f", "raw", "ref.raw", &size]).ok();
        for w in writes {
            qemu_io(d, &["-f", qfmt, "-c", w, &img]).ok();
            qemu_io(d, &["-f", "raw", "-c", w, "ref.raw"]).ok();
        }
        let r = qemu_img(d, &["compare", "-f", qfmt, "-F", "raw", &img, "ref.raw"]);
        assert_eq!(r.code, 0, "{what}: {r:#?}");
        let r = qemu_io(d, &["-f", qfmt, "-c", "read -P 0xa5 3M 512k", &img]).ok();
        assert!(!r.stdout.contains("fail"), "{what}: {r:#?}");
        if qfmt == "vdi" {
            let r = qemu_img(d, &["check", &img]);
            assert_eq!(r.code, 0, "{what}: {r:#?}");
        }
        // And the readers still read what qemu made of it.
        let fmt_enum = Format::from_name(fmt).unwrap();
        assert_reader_matches(d, &img, fmt_enum, &["-f", qfmt], &what);
    }
    // qcow with a backing file: unwritten clusters come from the backing.
    qemu_img(d, &["create", "-q", "-f", "raw", "base.raw", "4M"]).ok();
    qemu_io(d, &["-f", "raw", "-c", "write -P 0x11 0 4M", "base.raw"]).ok();
    diskforge(
        d,
        &[
            "create", "-q", "-f", "qcow", "-b", "base.raw", "-F", "raw", "top.qcow",
        ],
    )
    .ok();
    std::fs::copy(d.join("base.raw"), d.join("expect.raw")).unwrap();
    for w in ["write -P 0x22 1M 512k", "write -P 0x44 3000k 3k"] {
        qemu_io(d, &["-f", "qcow", "-c", w, "top.qcow"]).ok();
        qemu_io(d, &["-f", "raw", "-c", w, "expect.raw"]).ok();
    }
    let r = qemu_img(
        d,
        &[
            "compare",
            "-f",
            "qcow",
            "-F",
            "raw",
            "top.qcow",
            "expect.raw",
        ],
    );
    assert_eq!(r.code, 0, "qcow with backing: {r:#?}");
}

// ----------------------------------------------------------- reproducible

#[test]
fn reproducible_images_are_identical_and_follow_source_date_epoch() {
    let dir = tempdir();
    let d = dir.path();
    let run = |name: &str, fmt: &str, opts: &str, epoch: Option<&str>| -> Vec<u8> {
        let mut cmd = std::process::Command::new(diskforge_bin());
        cmd.current_dir(d)
            .args(["create", "-q", "--reproducible", "-f", fmt]);
        if !opts.is_empty() {
            cmd.args(["-o", opts]);
        }
        cmd.args([name, "100M"]);
        match epoch {
            Some(e) => cmd.env("SOURCE_DATE_EPOCH", e),
            None => cmd.env_remove("SOURCE_DATE_EPOCH"),
        };
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        read(&d.join(name))
    };
    for (fmt, opts) in [
        ("vdi", ""),
        ("vdi", "static=on"),
        ("vpc", ""),
        ("vpc", "subformat=fixed"),
        ("qcow", ""),
    ] {
        let a = run("a.img", fmt, opts, Some("1700000000"));
        let b = run("a.img", fmt, opts, Some("1700000000"));
        assert!(a == b, "{fmt} {opts}: --reproducible twice identical");
        // The file name is not an input: same arguments, other name.
        let c = run("c.img", fmt, opts, Some("1700000000"));
        assert!(a == c, "{fmt} {opts}: independent of the file name");
        // qemu reads it as usual.
        let r = qemu_img(d, &["info", "-f", ext(fmt), "a.img"]);
        assert_eq!(r.code, 0, "{r:#?}");
        if fmt == "vpc" {
            let end = a.len() - 512;
            let ts = |img: &[u8], at: usize| {
                u32::from_be_bytes(img[at + 24..at + 28].try_into().unwrap())
            };
            assert_eq!(u64::from(ts(&a, end)), 1_700_000_000 - VHD_EPOCH);
            let later = run("a.img", fmt, opts, Some("1700000999"));
            assert_eq!(u64::from(ts(&later, end)), 1_700_000_999 - VHD_EPOCH);
            assert_ne!(
                a[end + 64..end + 68],
                later[end + 64..end + 68],
                "checksum follows"
            );
            let unset = run("a.img", fmt, opts, None);
            assert_eq!(ts(&unset, end), 0, "no SOURCE_DATE_EPOCH: 0");
            // The footer checksum stays valid: qemu opens it.
            let r = qemu_img(d, &["info", "-f", "vpc", "a.img"]);
            assert_eq!(r.code, 0, "{r:#?}");
        }
    }
    // Without --reproducible the clock is used, like qemu.
    diskforge(d, &["create", "-q", "-f", "vpc", "now.vhd", "1M"]).ok();
    let now = read(&d.join("now.vhd"));
    let ts = u64::from(u32::from_be_bytes(now[24..28].try_into().unwrap())) + VHD_EPOCH;
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(clock.abs_diff(ts) < 120, "timestamp {ts} vs clock {clock}");
}

// ------------------------------------------------------------------ errors

/// Runs the same failing create with qemu-img (which must fail too) and
/// diskforge, checking diskforge's exit status and message prefix.
fn assert_fails_like_qemu(args: &[&str], code: i32, message: &str) {
    let dir = tempdir();
    let d = dir.path();
    qemu_img(d, &["create", "-q", "-f", "raw", "base.raw", "1M"]).ok();
    let qargs: Vec<&str> = args
        .iter()
        .map(|a| if *a == "vhd" { "vpc" } else { a })
        .collect();
    let q = qemu_img(d, &qargs);
    assert_ne!(q.code, 0, "qemu-img should fail too: {args:?} {q:#?}");
    let r = diskforge(d, args);
    assert_eq!(r.code, code, "{args:?}: {r:#?}");
    let line = r.stderr.trim_end();
    // One line, or two where qemu-img adds a hint line.
    assert_eq!(
        line.lines().count(),
        message.lines().count(),
        "line count: {r:#?}"
    );
    assert!(
        line.starts_with(&format!("diskforge: {message}")),
        "{args:?}: expected 'diskforge: {message}...', got {line:?}"
    );
}

#[test]
fn errors_are_qemus_with_exit_codes() {
    let c = ["create", "-q", "-f"];
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["vdi", "x.vdi", "1048576G"],
            2,
            "x.vdi: Unsupported VDI image size (size is 0x4000000000000, max supported is 0x1fffff8000000)",
        ),
        (
            &["vdi", "-o", "static=on", "x.vdi", "4096T"],
            2,
            "x.vdi: Unsupported VDI image size",
        ),
        (
            &["vpc", "x.vpc", "2041G"],
            2,
            "x.vpc: The image size is too large for file format 'vpc'",
        ),
        (
            &["vpc", "-o", "subformat=fixed", "x.vpc", "2041G"],
            2,
            "x.vpc: The image size is too large for file format 'vpc'",
        ),
        (
            &["vhd", "-o", "force_size=on", "x.vhd", "2041G"],
            2,
            "x.vhd: The image size is too large for file format 'vpc'",
        ),
        (
            &["vpc", "-o", "subformat=bogus", "x.vpc", "1M"],
            2,
            "x.vpc: Parameter 'subformat' does not accept value 'bogus'",
        ),
        (
            &["vpc", "-o", "force_size=maybe", "x.vpc", "1M"],
            2,
            "x.vpc: Parameter 'force_size' expects 'on' or 'off'",
        ),
        (
            &["vdi", "-o", "static=maybe", "x.vdi", "1M"],
            2,
            "x.vdi: Parameter 'static' expects 'on' or 'off'",
        ),
        (
            &["vdi", "-b", "base.raw", "-F", "raw", "x.vdi"],
            2,
            "x.vdi: Backing file not supported for file format 'vdi'",
        ),
        (
            &["vdi", "-o", "backing_file=base.raw", "x.vdi", "1M"],
            2,
            "x.vdi: Invalid parameter 'backing_file'",
        ),
        (
            &["vpc", "-b", "base.raw", "-F", "raw", "x.vpc"],
            2,
            "x.vpc: Backing file not supported for file format 'vpc'",
        ),
        (
            &["vhd", "-o", "backing_file=base.raw", "x.vhd", "1M"],
            2,
            "x.vhd: Invalid parameter 'backing_file'",
        ),
        (
            &["vdi", "-o", "preallocation=metadata", "x.vdi", "1M"],
            2,
            "x.vdi: Unsupported preallocation mode: metadata",
        ),
        (
            &["vpc", "-o", "preallocation=metadata", "x.vpc", "1M"],
            2,
            "x.vpc: Unsupported preallocation mode: metadata",
        ),
        (
            &["qcow", "-o", "preallocation=metadata", "x.qcow", "1M"],
            2,
            "x.qcow: Unsupported preallocation mode: metadata",
        ),
        (
            &["qcow", "x.qcow", "0"],
            2,
            "x.qcow: Image size is too small, cannot be zero length",
        ),
        (
            &["qcow", "-b", "base.raw", "x.qcow"],
            2,
            "x.qcow: Backing file specified without backing format\nDetected format of raw.",
        ),
        (
            &["qcow", "-b", "missing.img", "-F", "raw", "x.qcow"],
            1,
            "x.qcow: Could not open 'missing.img': No such file or directory\nCould not open backing image.",
        ),
        (
            &["qcow", "-o", "encryption=on", "x.qcow", "1M"],
            2,
            "x.qcow: option 'encryption' is not supported",
        ),
        (
            &["vdi", "x.vdi"],
            2,
            "x.vdi: Image creation needs a size parameter",
        ),
    ];
    for (args, code, msg) in cases {
        let full: Vec<&str> = c.iter().chain(args.iter()).copied().collect();
        assert_fails_like_qemu(&full, *code, msg);
    }
    // The largest sizes that are allowed are created.
    let dir = tempdir();
    let d = dir.path();
    diskforge(d, &["create", "-q", "-f", "vpc", "max.vpc", "2040G"]).ok();
    let j = qemu_info_json(d, "max.vpc", &[]);
    assert_eq!(j["virtual-size"].as_u64(), Some(2040u64 << 30));
}

// ----------------------------------------------------------- hostile input

/// A qemu-made image, modified by `edit`, must make the reader fail with
/// one line naming the file, never panic.
fn assert_rejected(
    dir: &Path,
    fmt: Format,
    base: &str,
    edit: impl FnOnce(&mut Vec<u8>),
    expect: &str,
) {
    let mut bytes = read(&dir.join(base));
    edit(&mut bytes);
    let bad = dir.join(format!("bad-{base}"));
    std::fs::write(&bad, &bytes).unwrap();
    let result = match fmt {
        Format::Vdi => format::vdi::inspect(&bad),
        Format::Vpc => format::vpc::inspect(&bad),
        Format::Qcow => format::qcow::inspect(&bad),
        _ => unreachable!(),
    };
    match result {
        Err(Error::Image(e)) => {
            let m = e.reason();
            // One line, or two where qemu-img adds a hint.
            assert!(m.lines().count() <= 2, "one line: {m}");
            assert_eq!(e.file, bad.display().to_string(), "names the file: {e:?}");
            assert!(m.contains(expect), "expected {expect:?} in {m:?}");
            {
                // qemu-img's message for the same file is the expected one.
                let name = bad.file_name().unwrap().to_str().unwrap();
                let q = qemu_img(dir, &["info", "-f", fmt.name(), name]);
                let ours = e.to_string().replace(&bad.display().to_string(), name);
                assert_eq!(
                    q.stderr.trim_end(),
                    format!("qemu-img: {ours}"),
                    "{base} ({expect})"
                );
            }
        }
        other => panic!("{base} ({expect}): expected a failure, got {other:?}"),
    }
    assert!(format::virtual_size(&bad, fmt).is_err());
}

fn put_le32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_be32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
fn put_be64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

/// Recomputes a VHD footer's checksum (so that an edit reaches the checks
/// behind it).
fn reseal_footer(b: &mut [u8], at: usize) {
    b[at + 64..at + 68].fill(0);
    let sum = b[at..at + 512]
        .iter()
        .fold(0u32, |s, &x| s.wrapping_add(u32::from(x)));
    put_be32(b, at + 64, !sum);
}

#[test]
fn hostile_vdi_headers_are_refused() {
    let dir = tempdir();
    let d = dir.path();
    qemu_img(d, &["create", "-q", "-f", "vdi", "v.vdi", "10M"]).ok();
    let v = Format::Vdi;
    assert_rejected(
        d,
        v,
        "v.vdi",
        |b| put_le32(b, 0x180, u32::MAX),
        "too many blocks 4294967295, max is 536870784",
    );
    assert_rejected(
        d,
        v,
        "v.vdi",
        |b| b[0x170..0x178].copy_from_slice(&u64::MAX.to_le_bytes()),
        "Unsupported VDI image size",
    );
    assert_rejected(
        d,
        v,
        "v.vdi",
        |b| put_le32(b, 0x180, 1),
        "image bitmap has room for 1048576",
    );
    assert_rejected(
        d,
        v,
        "v.vdi",
        |b| put_le32(b, 0x154, 0x201),
        "unaligned block map offset 0x201",
    );
    assert_rejected(
        d,
        v,
        "v.vdi",
        |b| put_le32(b, 0x158, 0xffff_ffff),
        "unaligned data offset",
    );
    assert_rejected(
        d,
        v,
        "v.vdi",
        |b| put_le32(b, 0x178, 0),
        "block size 0 is not 1048576",
    );
    assert_rejected(
        d,
        v,
        "v.vdi",
        |b| put_le32(b, 0x168, 4096),
        "sector size 4096",
    );
    assert_rejected(
        d,
        v,
        "v.vdi",
        |b| put_le32(b, 0x44, 0x0002_0000),
        "version 2.0",
    );
    assert_rejected(
        d,
        v,
        "v.vdi",
        |b| put_le32(b, 0x40, 0),
        "bad signature 00000000",
    );
    assert_rejected(d, v, "v.vdi", |b| b[0x1a8] = 1, "non-NULL link UUID");
    assert_rejected(d, v, "v.vdi", |b| b[0x1b8] = 1, "non-NULL parent UUID");
    // Past the end of a short file the header reads as zeros, as in qemu.
    assert_rejected(
        d,
        v,
        "v.vdi",
        |b| b.truncate(300),
        "sector size 0 is not 512",
    );
    assert_rejected(d, v, "v.vdi", |b| b.clear(), "bad signature 00000000");
    // Absurd but allowed block counts need no memory: the block map is
    // not loaded. qemu accepts this image as well.
    let mut b = read(&d.join("v.vdi"));
    put_le32(&mut b, 0x180, 0x1fff_ff80);
    std::fs::write(d.join("many.vdi"), &b).unwrap();
    assert!(format::vdi::inspect(&d.join("many.vdi")).is_ok());
}

#[test]
fn hostile_vhd_headers_are_refused() {
    let dir = tempdir();
    let d = dir.path();
    qemu_img(d, &["create", "-q", "-f", "vpc", "dyn.vhd", "10M"]).ok();
    qemu_img(
        d,
        &[
            "create",
            "-q",
            "-f",
            "vpc",
            "-o",
            "subformat=fixed",
            "fix.vhd",
            "3M",
        ],
    )
    .ok();
    let p = Format::Vpc;
    let dyn_len = read(&d.join("dyn.vhd")).len();
    // Footer copy at 0, dynamic header at 512: fields at 512 + offset.
    let max_entries = 512 + 28;
    let table_offset = 512 + 16;
    let block_size = 512 + 32;
    assert_rejected(
        d,
        p,
        "dyn.vhd",
        |b| b[70] ^= 0xff,
        "Incorrect header checksum",
    );
    assert_rejected(
        d,
        p,
        "dyn.vhd",
        |b| put_be32(b, max_entries, 0x7fff_ffff),
        "Max Table Entries too large",
    );
    assert_rejected(
        d,
        p,
        "dyn.vhd",
        |b| put_be32(b, max_entries, 0x1fff_ffff),
        "Error reading pagetable",
    );
    assert_rejected(
        d,
        p,
        "dyn.vhd",
        |b| put_be32(b, max_entries, 1),
        "Page table too small",
    );
    assert_rejected(
        d,
        p,
        "dyn.vhd",
        |b| put_be64(b, table_offset, u64::MAX - 3),
        "Error reading pagetable",
    );
    assert_rejected(
        d,
        p,
        "dyn.vhd",
        |b| put_be32(b, block_size, 3),
        "Invalid block size 3",
    );
    assert_rejected(
        d,
        p,
        "dyn.vhd",
        |b| put_be32(b, block_size, 0),
        "Invalid block size 0",
    );
    assert_rejected(d, p, "dyn.vhd", |b| b[512] = b'X', "Invalid header magic");
    assert_rejected(
        d,
        p,
        "dyn.vhd",
        |b| {
            put_be64(b, 16, u64::MAX - 100);
            reseal_footer(b, 0);
        },
        "Error reading dynamic VHD header",
    );
    assert_rejected(
        d,
        p,
        "dyn.vhd",
        |b| {
            // A BAT entry far past the end: the image "has been truncated".
            put_be32(b, 1536, 0x0100_0000);
        },
        "The image has been truncated",
    );
    assert_rejected(
        d,
        p,
        "dyn.vhd",
        // qemu sees the length rounded up to a sector: cut a whole one.
        |b| b.truncate(dyn_len - 1024),
        "has been truncated",
    );
    // The footer copy fits in 100 bytes; the dynamic header past the end
    // reads as zeros.
    assert_rejected(d, p, "dyn.vhd", |b| b.truncate(100), "Invalid header magic");
    // qemu sees a length rounded up to a sector: only an empty file is
    // too small.
    assert_rejected(d, p, "dyn.vhd", |b| b.truncate(0), "File too small");
    assert_rejected(
        d,
        p,
        "dyn.vhd",
        |b| {
            // current_size beyond 2040 GiB with a size-from-footer creator.
            b[28..32].copy_from_slice(b"qem2");
            put_be64(b, 48, u64::MAX);
            reseal_footer(b, 0);
        },
        "File too large",
    );
    let fix_len = read(&d.join("fix.vhd")).len();
    assert_rejected(
        d,
        p,
        "fix.vhd",
        |b| b[fix_len - 512 + 70] ^= 1,
        "Incorrect header checksum",
    );
    assert_rejected(
        d,
        p,
        "fix.vhd",
        |b| {
            put_be32(b, fix_len - 512 + 60, 3);
            reseal_footer(b, fix_len - 512);
        },
        "invalid VPC image",
    );
    assert_rejected(
        d,
        p,
        "fix.vhd",
        // Cut into the footer past a sector boundary: qemu looks for it
        // in the last 512 bytes of the length rounded up to a sector.
        |b| b.truncate(fix_len - 600),
        "invalid VPC image",
    );
    assert_rejected(d, p, "fix.vhd", |b| b.clear(), "File too small");
    // qemu refuses them as well.
    for bad in ["bad-dyn.vhd", "bad-fix.vhd"] {
        let r = qemu_img(d, &["info", "-f", "vpc", bad]);
        assert_ne!(r.code, 0, "{bad}: {r:#?}");
    }
}

#[test]
fn hostile_qcow_headers_are_refused() {
    let dir = tempdir();
    let d = dir.path();
    qemu_img(d, &["create", "-q", "-f", "qcow", "q.qcow", "10M"]).ok();
    let q = Format::Qcow;
    assert_rejected(
        d,
        q,
        "q.qcow",
        |b| b[32] = 63,
        "Cluster size must be between 512 and 64k",
    );
    assert_rejected(
        d,
        q,
        "q.qcow",
        |b| b[33] = 0,
        "L2 table size must be between 512 and 64k",
    );
    assert_rejected(
        d,
        q,
        "q.qcow",
        |b| put_be64(b, 24, 0),
        "Image size is too small",
    );
    assert_rejected(
        d,
        q,
        "q.qcow",
        |b| put_be64(b, 24, u64::MAX),
        "Image too large",
    );
    assert_rejected(
        d,
        q,
        "q.qcow",
        |b| {
            b[32] = 9;
            b[33] = 6;
            put_be64(b, 24, 1 << 60);
        },
        "Image too large",
    );
    assert_rejected(
        d,
        q,
        "q.qcow",
        |b| {
            put_be64(b, 8, 48);
            put_be32(b, 16, u32::MAX);
        },
        "Backing file name too long",
    );
    assert_rejected(
        d,
        q,
        "q.qcow",
        |b| put_be32(b, 36, 7),
        "invalid encryption method",
    );
    assert_rejected(
        d,
        q,
        "q.qcow",
        |b| put_be32(b, 4, 2),
        "does not support qcow version 2",
    );
    assert_rejected(d, q, "q.qcow", |b| b[0] = 0, "Image not in qcow format");
    assert_rejected(
        d,
        q,
        "q.qcow",
        |b| b.truncate(20),
        "Image size is too small",
    );
    assert_rejected(d, q, "q.qcow", |b| b.clear(), "Image not in qcow format");
    // A backing name past the end of the file reads as zeros, as in qemu.
    let mut b = read(&d.join("q.qcow"));
    put_be64(&mut b, 8, 1 << 40);
    put_be32(&mut b, 16, 1000);
    std::fs::write(d.join("far.qcow"), &b).unwrap();
    assert!(format::qcow::inspect(&d.join("far.qcow")).is_ok());
}

// ------------------------------------------- hostile input, bounded memory

/// Address space the readers get for hostile files: a reader that sized
/// an allocation by a header field (qemu allocates up to 2 GiB for a vdi
/// block map or a VHD block table) would abort under this limit.
const ADDRESS_SPACE_LIMIT: u64 = 256 << 20;

/// The child half of [`hostile_files_are_read_within_256_mib`]: reads every
/// file of `$DISKFORGE_HOSTILE_DIR` with the reader its extension names.
/// Without the variable (a normal test run) it does nothing.
#[test]
fn hostile_child_reads_files() {
    let Ok(dir) = std::env::var("DISKFORGE_HOSTILE_DIR") else {
        return;
    };
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let r = match p.extension().and_then(|e| e.to_str()) {
            Some("vdi") => format::vdi::inspect(&p).map(|_| ()),
            Some("vhd") => format::vpc::inspect(&p).map(|_| ()),
            Some("qcow") => format::qcow::inspect(&p).map(|_| ()),
            _ => continue,
        };
        println!(
            "{}: {}",
            p.display(),
            r.err().map(|e| e.to_string()).unwrap_or("ok".into())
        );
        n += 1;
    }
    println!("survived {n}");
}

#[test]
fn hostile_files_are_read_within_256_mib() {
    use std::os::unix::process::CommandExt;
    let dir = tempdir();
    let d = dir.path();
    qemu_img(d, &["create", "-q", "-f", "vdi", "v.vdi", "10M"]).ok();
    qemu_img(d, &["create", "-q", "-f", "vpc", "v.vhd", "10M"]).ok();
    qemu_img(d, &["create", "-q", "-f", "qcow", "v.qcow", "10M"]).ok();
    let edit = |src: &str, dst: &str, f: &dyn Fn(&mut Vec<u8>), len: Option<u64>| {
        let mut b = read(&d.join(src));
        f(&mut b);
        std::fs::write(d.join(dst), &b).unwrap();
        if let Some(l) = len {
            std::fs::OpenOptions::new()
                .write(true)
                .open(d.join(dst))
                .unwrap()
                .set_len(l)
                .unwrap();
        }
    };
    // vdi: the largest block map qemu accepts (2 GiB), and beyond.
    edit(
        "v.vdi",
        "a-max-blocks.vdi",
        &|b| put_le32(b, 0x180, 0x1fff_ff80),
        None,
    );
    edit(
        "v.vdi",
        "b-all-blocks.vdi",
        &|b| put_le32(b, 0x180, u32::MAX),
        None,
    );
    // vhd: a 320 MiB block table inside a (sparse) file that holds it
    // (more would only make the debug-build scan slower), and tables
    // beyond the file, up to 2 GiB.
    edit(
        "v.vhd",
        "c-huge-table.vhd",
        &|b| put_be32(b, 512 + 28, 0x0500_0000),
        Some(0x1400_1000),
    );
    edit(
        "v.vhd",
        "d-huge-table-short.vhd",
        &|b| put_be32(b, 512 + 28, 0x1fff_ffff),
        None,
    );
    edit(
        "v.vhd",
        "e-max-table.vhd",
        &|b| put_be32(b, 512 + 28, u32::MAX),
        None,
    );
    // qcow: the largest L1 table, a long backing name.
    edit(
        "v.qcow",
        "f-huge-l1.qcow",
        &|b| {
            b[32] = 9;
            b[33] = 6;
            put_be64(b, 24, (i32::MAX as u64 / 8) << 15);
        },
        None,
    );
    edit(
        "v.qcow",
        "g-long-name.qcow",
        &|b| {
            put_be64(b, 8, 48);
            put_be32(b, 16, 1023);
        },
        None,
    );
    // SAFETY: the pre_exec closure only calls setrlimit, which is
    // async-signal-safe, between fork and exec.
    let out = unsafe {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "hostile_child_reads_files",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("DISKFORGE_HOSTILE_DIR", d)
            .pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: ADDRESS_SPACE_LIMIT,
                    rlim_max: ADDRESS_SPACE_LIMIT,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
            .output()
            .unwrap()
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("survived 10"),
        "{out:?}\n{stdout}"
    );
}
