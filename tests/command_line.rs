//! The command line a person meets: clap's errors in one line with their
//! context, the long help of each subcommand, `--version` under both
//! names, and qemu-img subcommands that diskforge does not implement.

mod common;

use common::{diskforge, diskforge_bin, run_in, tempdir};
use std::path::Path;

/// Usage errors: one line on stderr, exit 2, with what clap knows (the
/// similar subcommand or flag, the missing argument, the valid values).
#[test]
fn usage_errors_keep_clap_context() {
    let dir = tempdir();
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "misspelt subcommand",
            &["creat"],
            "diskforge: unrecognized subcommand 'creat'; a similar subcommand exists: 'create'; try '--help'",
        ),
        (
            "misspelt flag",
            &["create", "--formt", "qcow2", "x", "1G"],
            "diskforge: unexpected argument '--formt' found; a similar argument exists: '--format'; try '--help'",
        ),
        (
            "missing file",
            &["info"],
            "diskforge: the following required arguments were not provided: <FILENAME>; try '--help'",
        ),
        (
            "bad value",
            &["info", "--output=xml", "x"],
            "diskforge: invalid value 'xml' for '--output <OFMT>' [possible values: human, json]; try '--help'",
        ),
        (
            "no subcommand",
            &[],
            "diskforge: missing subcommand (create, info or register); try '--help'",
        ),
    ];
    for (name, args, want) in cases {
        let r = diskforge(dir.path(), args);
        assert_eq!(r.code, 2, "{name}: {r:?}");
        assert_eq!(r.stdout, "", "{name}");
        assert_eq!(r.stderr, format!("{want}\n"), "{name}");
    }
}

/// A qemu-img subcommand that diskforge lacks says so, does nothing, and
/// exits as a failed operation of that subcommand would: 1.
#[test]
fn unimplemented_qemu_img_subcommands_say_so() {
    let dir = tempdir();
    let cases: &[(&str, &[&str], i32)] = &[
        ("measure", &["measure", "--size", "1G"], 1),
        ("amend", &["amend", "-o", "compat=1.1", "a.qcow2"], 1),
        ("resize", &["resize", "a.qcow2", "+1G"], 1),
        ("snapshot", &["snapshot", "-l", "a.qcow2"], 1),
        ("help rebase", &["help", "rebase"], 1),
    ];
    for (name, args, code) in cases {
        let r = diskforge(dir.path(), args);
        assert_eq!(r.code, *code, "{name}: {r:?}");
        let sub = if args[0] == "help" { args[1] } else { args[0] };
        assert!(
            r.stderr.starts_with(&format!(
                "diskforge: '{sub}' is not implemented yet (this diskforge implements: create, info"
            )),
            "{name}: {r:?}"
        );
        assert_eq!(r.stderr.lines().count(), 1, "{name}: {r:?}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{name}");
    }
    // A word that is no qemu-img subcommand stays a usage error.
    let r = diskforge(dir.path(), &["frobnicate"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("unrecognized subcommand 'frobnicate'"),
        "{r:?}"
    );
}

/// `SUB --help` and `help SUB` show the long description of the
/// subcommand (credential lookup, clouds.yaml paths, format detection),
/// not only its one-line summary.
#[test]
fn long_help_of_each_subcommand() {
    let dir = tempdir();
    let cases: &[(&str, &[&str])] = &[
        ("create", &["powers of 1024", "-o help"]),
        ("info", &["detected from the", "content unless -f"]),
        (
            "register",
            &["clouds.yaml", "/etc/openstack", "OS_AUTH_URL"],
        ),
    ];
    for (sub, wanted) in cases {
        for args in [vec![*sub, "--help"], vec!["help", *sub]] {
            let r = diskforge(dir.path(), &args).ok();
            let text = r.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
            for w in *wanted {
                assert!(text.contains(w), "{args:?} lacks {w:?}:\n{}", r.stdout);
            }
        }
    }
}

/// `--version` as diskforge, and as qemu-img through a symlink: then it
/// starts as qemu-img's does, which Cinder (`re.match(r"qemu-img version
/// ([0-9\.]*)")`) and COT (`qemu-img version ([0-9.]+)`) parse; `--help`
/// too starts with that line, as qemu-img's does.
#[test]
fn version_under_both_names() {
    let dir = tempdir();
    let link = dir.path().join("qemu-img");
    std::os::unix::fs::symlink(diskforge_bin(), &link).unwrap();
    let own = env!("CARGO_PKG_VERSION");
    let cases: &[(&str, &Path, &[&str], String)] = &[
        (
            "diskforge --version",
            &diskforge_bin(),
            &["--version"],
            format!("diskforge {own} (qemu-img version 10.0.2 interface)\n"),
        ),
        (
            "diskforge -V",
            &diskforge_bin(),
            &["-V"],
            format!("diskforge {own} (qemu-img version 10.0.2 interface)\n"),
        ),
        (
            "qemu-img --version",
            &link,
            &["--version"],
            format!("qemu-img version 10.0.2 (diskforge {own})\n"),
        ),
        (
            "qemu-img -V",
            &link,
            &["-V"],
            format!("qemu-img version 10.0.2 (diskforge {own})\n"),
        ),
    ];
    for (name, program, args, want) in cases {
        let r = run_in(dir.path(), program, args).ok();
        assert_eq!(&r.stdout, want, "{name}");
    }
    // The same pattern as the callers', anchored at the start of output.
    let r = run_in(dir.path(), &link, &["--version"]).ok();
    let version = r
        .stdout
        .strip_prefix("qemu-img version ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap();
    let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap()).collect();
    assert_eq!(parts, [10, 0, 2]);
    let h = run_in(dir.path(), &link, &["--help"]).ok();
    assert!(
        h.stdout.starts_with("qemu-img version 10.0.2 (diskforge"),
        "{}",
        h.stdout
    );
    let h = diskforge(dir.path(), &["--help"]).ok();
    assert!(h.stdout.starts_with("diskforge creates"), "{}", h.stdout);
    // Errors and usage name the program as invoked.
    let e = run_in(dir.path(), &link, &["resize", "a", "+1G"]);
    assert!(
        e.stderr
            .starts_with("qemu-img: 'resize' is not implemented yet"),
        "{e:?}"
    );
}

/// `--version` into a pipe whose reader is gone (`diskforge --version |
/// true`) exits 0 without a panic: the read end is closed before the
/// process starts, so its write fails with EPIPE every time.
#[test]
fn version_into_a_closed_pipe() {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe() fills two new descriptors, which are owned below.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read_end);
    let out = std::process::Command::new(diskforge_bin())
        .arg("--version")
        .stdout(std::process::Stdio::from(write_end))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        out.stdout.is_empty(),
        "stdout was captured, not the closed pipe"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
