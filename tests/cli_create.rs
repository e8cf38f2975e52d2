//! The `create` command line against the real qemu-img: size parsing,
//! `-o` parsing, `-o help`, the `Formatting` line, raw images and every
//! error case.

mod common;

use common::*;
use std::path::Path;

/// Asserts two files hold the same bytes, naming the first difference.
fn assert_same_file(ours: &Path, theirs: &Path) {
    let (a, b) = (read(ours), read(theirs));
    if let Some(at) = first_difference(&a, &b) {
        panic!(
            "{} differs from qemu-img's {} at byte {at} (lengths {} and {})",
            ours.display(),
            theirs.display(),
            a.len(),
            b.len()
        );
    }
}

/// The message after the program-name prefix.
fn message<'a>(stderr: &'a str, prefix: &str) -> &'a str {
    stderr
        .trim_end()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("stderr {stderr:?} does not start with {prefix:?}"))
}

/// Runs `create ARGS` with both tools, each in its own directory with the
/// same file names, and returns (qemu, diskforge) results.
fn both(args: &[&str]) -> (Run, Run, tempfile::TempDir, tempfile::TempDir) {
    let qd = tempdir();
    let dd = tempdir();
    let mut a = vec!["create"];
    a.extend_from_slice(args);
    let q = qemu_img(qd.path(), &a);
    let d = diskforge(dd.path(), &a);
    (q, d, qd, dd)
}

/// Every size form formats.md lists (and more) parses as qemu-img parses
/// it: the same Formatting line and file size, or a refusal with qemu's
/// message.
#[test]
fn size_table_matches_qemu_img() {
    let sizes = [
        "0",
        "1",
        "511",
        "512",
        "1k",
        "1K",
        "1.5G",
        "1.1k",
        "0.9k",
        "1b",
        "1B",
        "KB",
        "1KB",
        "1KiB",
        "1 G",
        "1k5",
        "1.5",
        "1e3",
        "8E",
        "0x100",
        "+1G",
        " 1G",
        "010",
        "1M",
        "1m",
        "1g",
        "1t",
        "1.5b",
        "1.5k",
        "0.5k",
        ".5k",
        "5.",
        "5.k",
        "1.k",
        "",
        "abc",
        "8192P",
        "1.9999999999k",
        "0x1.8k",
        "0X10",
        " +0x10",
        "1G ",
        "1Gb",
        "0.0000001k",
        "1_000",
        "0x",
        "0x10b",
        "-abc",
        "+-1",
        " -1",
        "99999999999999999999",
        "1.5e3k",
        "16E",
        "15.99999999999E",
        "9223372036854775808",
        "18446744073709551615",
        "0.99999999999999999999k",
    ];
    for s in sizes {
        let (q, d, qd, dd) = both(&["-f", "raw", "img", "--", s]);
        assert_eq!(d.stdout, q.stdout, "Formatting line for size {s:?}");
        if q.code == 0 {
            assert_eq!(d.code, 0, "size {s:?}: {d:?}");
            let ql = std::fs::metadata(qd.path().join("img")).unwrap().len();
            let dl = std::fs::metadata(dd.path().join("img")).unwrap().len();
            assert_eq!(dl, ql, "file length for size {s:?}");
        } else {
            assert_eq!(d.code, 2, "size {s:?} must be a usage error: {d:?}");
            assert_eq!(
                message(&d.stderr, "diskforge: "),
                message(&q.stderr, "qemu-img: "),
                "message for size {s:?}"
            );
            assert!(
                !dd.path().join("img").exists(),
                "nothing left behind for {s:?}"
            );
        }
    }
}

/// Sizes that parse but are too large for the file system fail the way
/// qemu-img fails, and leave no file behind.
#[test]
fn too_large_for_the_file_system() {
    for s in ["7E", "1E", "8191P", "16T"] {
        let (q, d, _qd, dd) = both(&["-f", "raw", "img", s]);
        assert_eq!(q.code, 1);
        assert_eq!(d.code, 1, "{s}: {d:?}");
        assert_eq!(d.stdout, q.stdout);
        assert_eq!(
            message(&d.stderr, "diskforge: "),
            message(&q.stderr, "qemu-img: ")
        );
        assert!(
            !dd.path().join("img").exists(),
            "partial file removed for {s}"
        );
    }
}

/// The `-o` grammar: escapes, repeats, bare keys, `size=`, and the
/// Formatting line that shows the result.
#[test]
fn option_parsing_matches_qemu_img() {
    let cases: &[&[&str]] = &[
        &[
            "-f",
            "qcow2",
            "-o",
            "cluster_size=4k",
            "-o",
            "cluster_size=8k",
            "img",
            "1M",
        ],
        &["-f", "qcow2", "-o", "lazy_refcounts", "img", "1M"],
        &["-f", "qcow2", "-o", "nolazy_refcounts", "img", "1M"],
        &[
            "-f",
            "qcow2",
            "-o",
            "lazy_refcounts=yes,refcount_bits=0x10",
            "img",
            "1M",
        ],
        &["-f", "qcow2", "-o", "size=1.1k", "img"],
        &[
            "-f",
            "qcow2",
            "-o",
            "compat=v3,preallocation=metadata",
            "img",
            "1M",
        ],
        &[
            "-f",
            "qcow2",
            "-o",
            "compat=0.10",
            "-o",
            "refcount_bits=16",
            "img",
            "64M",
        ],
        &[
            "-f",
            "raw",
            "-o",
            "preallocation=falloc,extent_size_hint=1M,nocow=on",
            "img",
            "1M",
        ],
        &["-f", "raw", "img", "1.1k"],
        &["-q", "-f", "raw", "img", "1M"],
        &["-f", "raw", "img", "1M", "-q"],
    ];
    for args in cases {
        let (q, d, qd, dd) = both(args);
        assert_eq!(q.code, 0, "{args:?}: {q:?}");
        assert_eq!(d.code, 0, "{args:?}: {d:?}");
        assert_eq!(d.stdout, q.stdout, "{args:?}");
        assert_same_file(&dd.path().join("img"), &qd.path().join("img"));
    }
}

/// `,,` escapes a comma in a value (checked with -u so that no backing
/// file needs to exist).
#[test]
fn escaped_comma_in_backing_name() {
    let args = [
        "-f",
        "qcow2",
        "-u",
        "-o",
        "backing_file=a,,b,backing_fmt=raw",
        "img",
        "1M",
    ];
    let (q, d, qd, dd) = both(&args);
    assert_eq!(q.code, 0);
    assert_eq!(d.code, 0, "{d:?}");
    assert_eq!(d.stdout, q.stdout);
    assert!(d.stdout.contains("backing_file=a,,b"));
    let qi = qemu_info_json(qd.path(), "img", &[]);
    let di = qemu_info_json(dd.path(), "img", &[]);
    assert_eq!(di["backing-filename"], qi["backing-filename"]);
    assert_eq!(di["backing-filename"], "a,b");
}

/// `-o help` lists what qemu-img lists, for every format, with and
/// without a file name, with exit status 0 and nothing created.
#[test]
fn option_help_matches_qemu_img() {
    for fmt in ["raw", "qcow2", "qcow", "vmdk", "vdi", "vpc"] {
        for args in [
            vec!["-f", fmt, "-o", "help"],
            vec!["-f", fmt, "-o", "help", "img", "1M"],
            vec!["-f", fmt, "-o", "?"],
            vec!["-f", fmt, "-o", "cluster_size=4k,help"],
        ] {
            let (q, d, _qd, dd) = both(&args);
            assert_eq!(q.code, 0);
            assert_eq!(d.code, 0, "{args:?}: {d:?}");
            assert_eq!(d.stdout, q.stdout, "{args:?}");
            assert!(!dd.path().join("img").exists());
        }
    }
}

/// raw images: sparse, fallocated or zero-filled, byte-identical to
/// qemu-img's, with the same allocation class.
#[test]
fn raw_preallocation_modes() {
    for (mode, size) in [
        ("off", "10M"),
        ("falloc", "10M"),
        ("full", "10M"),
        ("off", "1.1k"),
    ] {
        let o = format!("preallocation={mode}");
        let (q, d, qd, dd) = both(&["-f", "raw", "-o", &o, "img", size]);
        assert_eq!(q.code, 0);
        assert_eq!(d.code, 0, "{d:?}");
        assert_eq!(d.stdout, q.stdout);
        let qp = qd.path().join("img");
        let dp = dd.path().join("img");
        assert_same_file(&dp, &qp);
        let (qa, da) = (allocated_bytes(&qp), allocated_bytes(&dp));
        let len = std::fs::metadata(&qp).unwrap().len();
        if mode == "off" {
            assert_eq!(da, qa, "{mode}: the same first block allocated");
            assert!(
                da < len.max(4097),
                "{mode}: diskforge's file must be sparse ({da})"
            );
        } else {
            assert!(
                da >= len,
                "{mode}: diskforge's file must be allocated ({da} < {len})"
            );
            assert!(qa >= len);
        }
        let check = qemu_img(dd.path(), &["info", "--output=json", "img"]).ok();
        assert!(check.stdout.contains("\"format\": \"raw\""));
    }
}

/// Data qemu-io writes into a diskforge raw image reads back.
#[test]
fn raw_data_round_trip() {
    let dir = tempdir();
    diskforge(dir.path(), &["create", "-q", "-f", "raw", "d.img", "4M"]).ok();
    qemu_img(dir.path(), &["create", "-q", "-f", "raw", "r.img", "4M"]).ok();
    for img in ["d.img", "r.img"] {
        qemu_io(
            dir.path(),
            &[
                "-f",
                "raw",
                "-c",
                "write -P 0xab 0 64k",
                "-c",
                "write -P 0xcd 3M 4k",
                img,
            ],
        )
        .ok();
    }
    qemu_img(
        dir.path(),
        &["compare", "-f", "raw", "-F", "raw", "d.img", "r.img"],
    )
    .ok();
}

/// An existing file is overwritten, as qemu-img does.
#[test]
fn existing_file_is_overwritten() {
    let dir = tempdir();
    std::fs::write(dir.path().join("img"), vec![0x55u8; 100_000]).unwrap();
    diskforge(dir.path(), &["create", "-q", "-f", "raw", "img", "1k"]).ok();
    assert_eq!(read(&dir.path().join("img")), vec![0u8; 1024]);
}

/// Every refusal: one line on stderr (two where qemu-img adds a hint),
/// `diskforge: ` first, the right exit status, and no file left behind.
#[test]
fn error_cases() {
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["-f", "foo", "img", "1M"],
            2,
            "img: Unknown file format 'foo'",
        ),
        (
            &["-f", "qcow2", "-o", "foo=1", "img", "1M"],
            2,
            "img: Invalid parameter 'foo'",
        ),
        (
            &["-f", "raw", "-o", "cluster_size=4k", "img", "1M"],
            2,
            "img: Invalid parameter 'cluster_size'",
        ),
        (
            &["-f", "qcow2", "-o", "cluster_size=1000", "img", "1M"],
            2,
            "img: Cluster size must be a power of two between 512 and 2048k",
        ),
        (
            &["-f", "qcow2", "-o", "cluster_size=abc", "img", "1M"],
            2,
            "img: Parameter 'cluster_size' expects a non-negative number below 2^64",
        ),
        (
            &["-f", "qcow2", "-o", "refcount_bits=3", "img", "1M"],
            2,
            "img: Refcount width must be a power of two and may not exceed 64 bits",
        ),
        (
            &["-f", "qcow2", "-o", "refcount_bits=abc", "img", "1M"],
            2,
            "img: Parameter 'refcount_bits' expects a number",
        ),
        (
            &[
                "-f",
                "qcow2",
                "-o",
                "compat=0.10,lazy_refcounts=on",
                "img",
                "1M",
            ],
            2,
            "img: Lazy refcounts only supported with compatibility level 1.1 and above",
        ),
        (
            &[
                "-f",
                "qcow2",
                "-o",
                "extended_l2=on,cluster_size=4k",
                "img",
                "1M",
            ],
            2,
            "img: Extended L2 entries are only supported with cluster sizes of at least 16384 bytes",
        ),
        (
            &["-f", "qcow2", "-o", "lazy_refcounts=ON", "img", "1M"],
            2,
            "img: Parameter 'lazy_refcounts' expects 'on' or 'off'",
        ),
        (
            &["-f", "qcow2", "-o", "preallocation=xx", "img", "1M"],
            2,
            "img: Parameter 'preallocation' does not accept value 'xx'",
        ),
        (
            &["-f", "raw", "-o", "preallocation=metadata", "img", "1M"],
            2,
            "img: Unsupported preallocation mode: metadata",
        ),
        (
            &["-f", "qcow2", "-o", "encryption=on", "img", "1M"],
            2,
            "img: option 'encryption'",
        ),
        (
            &["-f", "qcow2", "-o", "encrypt.format=luks", "img", "1M"],
            2,
            "img: option 'encrypt.format'",
        ),
        (
            &["-f", "qcow2", "img"],
            2,
            "img: Image creation needs a size parameter",
        ),
        (
            &["-f", "qcow2", "-o", "size=1M", "img", "1M"],
            2,
            "img: The image size must be specified only once",
        ),
        (
            &["-f", "qcow2", "-o", "size=-1", "img"],
            2,
            "img: Value '-1' is out of range for parameter 'size'",
        ),
        (
            &["-f", "qcow2", "-o", "cluster_size=4k,", "img", "1M"],
            2,
            "Invalid option list: cluster_size=4k,",
        ),
        (
            &["-f", "qcow2", "-o", "=4k", "img", "1M"],
            2,
            "img: Invalid parameter ''",
        ),
        (
            &["-f", "qcow2", "-F", "raw", "img", "1M"],
            2,
            "img: Backing format cannot be used without backing file",
        ),
        (
            &["-f", "qcow2", "-u", "-b", "x", "img", "1M"],
            2,
            "img: Backing file specified without backing format",
        ),
        (
            &["-f", "raw", "-b", "x", "-F", "raw", "img", "1M"],
            2,
            "img: Backing file not supported for file format 'raw'",
        ),
        (
            &["-f", "qcow2", "-b", "nothere", "-F", "raw", "img", "1M"],
            1,
            "img: Could not open 'nothere': No such file or directory\nCould not open backing image.",
        ),
        (
            &["-f", "qcow2", "nodir/img", "1M"],
            1,
            "nodir/img: Could not create 'nodir/img': No such file or directory",
        ),
        (&["img", "1M", "extra"], 2, "unexpected argument 'extra'"),
        (&["-x", "img", "1M"], 2, "unexpected argument '-x'"),
        (&["img", "-1"], 2, "unexpected argument '-1'"),
        (&[], 2, "Expecting image file name"),
    ];
    for (args, code, msg) in cases {
        let dir = tempdir();
        let mut a = vec!["create"];
        a.extend_from_slice(args);
        let r = diskforge(dir.path(), &a);
        assert_eq!(r.code, *code, "{args:?}: {r:?}");
        // One line, or two where qemu-img adds a hint line.
        let lines = msg.lines().count();
        assert_eq!(
            r.stderr.lines().count(),
            lines,
            "{args:?}: {lines} line(s): {r:?}"
        );
        let m = message(&r.stderr, "diskforge: ");
        let m = m
            .strip_prefix(&format!("{}/", dir.path().display()))
            .unwrap_or(m);
        assert!(
            m.starts_with(msg),
            "{args:?}: {m:?} should start with {msg:?}"
        );
        assert!(!dir.path().join("img").exists(), "{args:?} left a file");
        // qemu-img refuses the same command (exit 1).
        let q = qemu_img(dir.path(), &a);
        assert_ne!(q.code, 0, "qemu-img accepts {args:?}");
        let _ = std::fs::remove_file(dir.path().join("img"));
    }
}

/// A directory the user may not write to fails with exit 1 and says so.
#[test]
fn unwritable_directory() {
    let dir = tempdir();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let r = diskforge(dir.path(), &["create", "-f", "qcow2", "ro", "1M"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .starts_with("diskforge: ro: Could not create 'ro': Is a directory"),
        "{r:?}"
    );
    // As root permissions do not stop us; a path through a regular file does.
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    let r = diskforge(dir.path(), &["create", "-f", "raw", "file/img", "1M"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("Not a directory"), "{r:?}");
}

/// SIZE defaults to the backing image's virtual size (raw and qcow2
/// backing images), resolved relative to the new image's directory.
#[test]
fn size_from_backing_image() {
    let dir = tempdir();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    qemu_img(&sub, &["create", "-q", "-f", "raw", "base.raw", "3M"]).ok();
    qemu_img(&sub, &["create", "-q", "-f", "qcow2", "base.qcow2", "5M"]).ok();
    for (base, fmt, size) in [
        ("base.raw", "raw", 3u64 << 20),
        ("base.qcow2", "qcow2", 5 << 20),
    ] {
        let r = diskforge(
            dir.path(),
            &[
                "create",
                "-f",
                "qcow2",
                "-b",
                base,
                "-F",
                fmt,
                "sub/top.qcow2",
            ],
        )
        .ok();
        let q = qemu_img(
            dir.path(),
            &[
                "create",
                "-f",
                "qcow2",
                "-b",
                base,
                "-F",
                fmt,
                "sub/q.qcow2",
            ],
        )
        .ok();
        assert_eq!(
            r.stdout.replace("sub/top.qcow2", "X"),
            q.stdout.replace("sub/q.qcow2", "X")
        );
        let info = qemu_info_json(dir.path(), "sub/top.qcow2", &[]);
        assert_eq!(info["virtual-size"], size, "{base}");
        assert_eq!(info["backing-filename"], base);
        assert_eq!(info["backing-filename-format"], fmt);
    }
    // Without -F: refused, naming the detected format.
    let r = diskforge(
        dir.path(),
        &["create", "-f", "qcow2", "-b", "base.qcow2", "sub/x.qcow2"],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("Backing file specified without backing format"),
        "{r:?}"
    );
    assert!(r.stderr.contains("qcow2"), "{r:?}");
}

/// Installed as `qemu-img` (a symlink), errors carry qemu-img's prefix.
#[test]
fn program_name_follows_argv0() {
    let dir = tempdir();
    let link = dir.path().join("qemu-img");
    std::os::unix::fs::symlink(diskforge_bin(), &link).unwrap();
    let r = run_in(dir.path(), &link, &["create", "-f", "foo", "img", "1M"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with("qemu-img: img: Unknown file format 'foo'"),
        "{r:?}"
    );
    let ok = run_in(
        dir.path(),
        Path::new(&link),
        &["create", "-f", "raw", "img", "1M"],
    )
    .ok();
    assert_eq!(ok.stdout, "Formatting 'img', fmt=raw size=1048576\n");
}

/// --help and --version exit 0 on stdout; no subcommand is a usage error.
#[test]
fn help_and_version() {
    let dir = tempdir();
    let v = diskforge(dir.path(), &["--version"]).ok();
    assert!(v.stdout.starts_with("diskforge "));
    let h = diskforge(dir.path(), &["--help"]).ok();
    assert!(h.stdout.contains("create"));
    let h = diskforge(dir.path(), &["help", "create"]).ok();
    assert!(h.stdout.contains("FILENAME"));
    let none = diskforge(dir.path(), &[]);
    assert_eq!(none.code, 2);
    assert_eq!(none.stderr.lines().count(), 1);
}

/// A full disk (ENOSPC) ends in one line that says so, exit 1, and the
/// partial image removed. The 2 MiB tmpfs is mounted in a private mount
/// namespace (`unshare -m`, as root, which CI is); where that is refused
/// the test fails rather than skipping.
#[test]
fn full_disk_removes_partial_image() {
    let dir = tempdir();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let cases = [
        ("raw", "preallocation=full"),
        ("raw", "preallocation=falloc"),
        ("qcow2", "preallocation=full"),
        ("qcow2", "preallocation=falloc"),
    ];
    let mut script = format!(
        "mount -t tmpfs -o size=2m tmpfs {} || exit 77; cd {} || exit 77",
        mnt.display(),
        mnt.display()
    );
    for (fmt, opt) in cases {
        script.push_str(&format!(
            "; {} create -q -f {fmt} -o {opt} img 10M 2>&1; echo \"rc=$?\"; ls",
            diskforge_bin().display()
        ));
    }
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("run unshare (util-linux)");
    assert_ne!(
        out.status.code(),
        Some(77),
        "cannot mount a tmpfs in a private namespace: {out:?}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        2 * cases.len(),
        "one error line and one rc line per case, no file left: {stdout}"
    );
    for (i, (fmt, opt)) in cases.iter().enumerate() {
        let (err, rc) = (lines[2 * i], lines[2 * i + 1]);
        assert_eq!(rc, "rc=1", "{fmt} {opt}: {stdout}");
        assert!(err.starts_with("diskforge: img: "), "{fmt} {opt}: {err}");
        assert!(
            err.contains("No space left on device"),
            "{fmt} {opt}: {err}"
        );
        assert!(err.contains("removed"), "{fmt} {opt}: {err}");
    }
}

/// Runs diskforge under a pseudo-terminal (util-linux `script`), so that
/// stderr is a terminal, and returns everything it wrote.
fn on_terminal(dir: &Path, args: &str) -> String {
    let cmd = format!("{} {args}", diskforge_bin().display());
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(dir)
        .output()
        .expect("run script(1) from util-linux");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Long work draws a progress bar on a terminal, none with -q, and none
/// when stderr is not a terminal.
#[test]
fn progress_bar_only_on_a_terminal() {
    let dir = tempdir();
    for fmt in ["raw", "qcow2"] {
        let shown = on_terminal(
            dir.path(),
            &format!("create -f {fmt} -o preallocation=full img 256M"),
        );
        assert!(
            shown.contains('[') && shown.contains("MiB"),
            "{fmt}: no progress bar on a terminal: {shown:?}"
        );
        let quiet = on_terminal(
            dir.path(),
            &format!("create -q -f {fmt} -o preallocation=full img 256M"),
        );
        assert_eq!(quiet, "", "{fmt}: -q must print nothing");
        let piped = diskforge(
            dir.path(),
            &[
                "create",
                "-f",
                fmt,
                "-o",
                "preallocation=full",
                "img",
                "256M",
            ],
        )
        .ok();
        assert_eq!(
            piped.stderr, "",
            "{fmt}: no bar when stderr is not a terminal"
        );
    }
}
