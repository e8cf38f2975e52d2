//! `convert` to raw against the real qemu-img: for sources of every
//! format made with qemu-img and written with qemu-io (unaligned writes,
//! the very end, zero ranges, compressed clusters, chains, several
//! sources), diskforge's output must be byte-identical to `qemu-img
//! convert`'s with the same arguments, allocated alike (`qemu-img map`
//! of both outputs), and `qemu-img compare` must call it identical to the
//! source; `-p` prints qemu-img's text; errors use qemu-img's words.

mod common;

use common::{diskforge, qemu_img, tempdir};
use std::path::Path;
use std::process::Command;

/// One conversion: a script that builds the sources in a fresh
/// directory, and the arguments given to both programs (the output name
/// is appended: `q.out` for qemu-img, `d.out` for diskforge).
struct Case {
    name: &'static str,
    script: &'static str,
    args: &'static [&'static str],
}

const QCOW2_DATA: &str = "qemu-img create -q -f qcow2 s.qcow2 64M
    qemu-io -f qcow2 -c 'write -P 0xab 0 1M' -c 'write -P 0x11 10M 3M' \
        -c 'write -z 20M 1M' -c 'write -P 0x7 67100000 4000' -c 'write -P 0 30M 64k' s.qcow2";

const CASES: &[Case] = &[
    Case {
        name: "qcow2: data, zero clusters, unaligned end, written zeros",
        script: QCOW2_DATA,
        args: &["s.qcow2"],
    },
    Case {
        name: "qcow2 -S 0 allocates everything",
        script: QCOW2_DATA,
        args: &["-S", "0", "s.qcow2"],
    },
    Case {
        name: "qcow2 -S 64k",
        script: "qemu-img create -q -f qcow2 s.qcow2 8M
            qemu-io -f qcow2 -c 'write -P 0x1 0 4k' -c 'write -P 0x2 200k 1k' s.qcow2",
        args: &["-S", "64k", "s.qcow2"],
    },
    Case {
        name: "qcow2 -m 1 -W",
        script: QCOW2_DATA,
        args: &["-m", "1", "-W", "s.qcow2"],
    },
    Case {
        name: "qcow2 compressed clusters",
        script: "qemu-img create -q -f raw r.raw 16M
            qemu-io -f raw -c 'write -P 0x5a 0 3M' -c 'write -P 0x33 8M 100k' r.raw
            qemu-img convert -c -O qcow2 r.raw s.qcow2",
        args: &["s.qcow2"],
    },
    Case {
        name: "qcow2 chain flattened (backing shorter than overlay)",
        script: "qemu-img create -q -f qcow2 b.qcow2 4M
            qemu-io -f qcow2 -c 'write -P 0x1 0 4M' b.qcow2
            qemu-img create -q -f qcow2 -b b.qcow2 -F qcow2 s.qcow2 8M
            qemu-io -f qcow2 -c 'write -P 0x2 1M 512' -c 'write -z 2M 64k' -c 'write -P 3 7M 1M' s.qcow2",
        args: &["s.qcow2"],
    },
    Case {
        name: "raw sparse, unaligned data",
        script: "qemu-img create -q -f raw s.raw 5M
            qemu-io -f raw -c 'write -P 0x11 1000 3000' -c 'write -P 0x22 5241000 880' s.raw",
        args: &["-f", "raw", "s.raw"],
    },
    Case {
        name: "several sources concatenated",
        script: "qemu-img create -q -f raw a.raw 3M
            qemu-io -f raw -c 'write -P 0x11 0 1M' a.raw
            qemu-img create -q -f qcow2 b.qcow2 5M
            qemu-io -f qcow2 -c 'write -P 0x22 4M 1M' b.qcow2",
        args: &["a.raw", "b.qcow2", "a.raw"],
    },
    Case {
        name: "vmdk sparse",
        script: "qemu-img create -q -f vmdk s.vmdk 10M
            qemu-io -f vmdk -c 'write -P 0x44 65536 70000' -c 'write -P 0x45 9M 1M' s.vmdk",
        args: &["s.vmdk"],
    },
    Case {
        name: "vmdk streamOptimized",
        script: "qemu-img create -q -f raw r.raw 6M
            qemu-io -f raw -c 'write -P 0x46 1M 1M' r.raw
            qemu-img convert -O vmdk -o subformat=streamOptimized r.raw s.vmdk",
        args: &["s.vmdk"],
    },
    Case {
        name: "vdi dynamic",
        script: "qemu-img create -q -f vdi s.vdi 10M
            qemu-io -f vdi -c 'write -P 0x55 3M 5000' s.vdi",
        args: &["s.vdi"],
    },
    Case {
        name: "vpc dynamic",
        script: "qemu-img create -q -f vpc s.vhd 10M
            qemu-io -f vpc -c 'write -P 0x66 2M 1M' s.vhd",
        args: &["-f", "vpc", "s.vhd"],
    },
    Case {
        name: "qcow",
        script: "qemu-img create -q -f qcow s.qcow 10M
            qemu-io -f qcow -c 'write -P 0x77 5M 3000' s.qcow",
        args: &["s.qcow"],
    },
    Case {
        name: "empty source",
        script: "qemu-img create -q -f qcow2 s.qcow2 1M",
        args: &["s.qcow2"],
    },
];

/// Runs a case's script in `dir`, failing loudly if a step fails.
fn build(dir: &Path, script: &str, name: &str) {
    let out = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{name}: setup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn raw_output_equals_qemu_img() {
    for case in CASES {
        let dir = tempdir();
        let d = dir.path();
        build(d, case.script, case.name);
        let mut qargs = vec!["convert", "-O", "raw"];
        qargs.extend_from_slice(case.args);
        let mut dargs = qargs.clone();
        qargs.push("q.out");
        dargs.push("d.out");
        let q = qemu_img(d, &qargs);
        assert_eq!(q.code, 0, "{}: qemu-img: {q:?}", case.name);
        let r = diskforge(d, &dargs);
        assert_eq!(r.code, 0, "{}: {r:?}", case.name);
        assert_eq!(
            (r.stdout.as_str(), r.stderr.as_str()),
            ("", ""),
            "{}",
            case.name
        );
        assert!(
            common::read(&d.join("q.out")) == common::read(&d.join("d.out")),
            "{}: output bytes differ",
            case.name
        );
        let qm = qemu_img(d, &["map", "--output=json", "-f", "raw", "q.out"]).ok();
        let dm = qemu_img(d, &["map", "--output=json", "-f", "raw", "d.out"]).ok();
        assert_eq!(dm.stdout, qm.stdout, "{}: allocation differs", case.name);
        if case.args.len() == 1 || case.args[0] == "-f" {
            let src = case.args[case.args.len() - 1];
            let c = qemu_img(d, &["compare", "-F", "raw", src, "d.out"]);
            assert_eq!(c.code, 0, "{}: {c:?}", case.name);
        }
    }
}

#[test]
fn progress_text_is_qemu_imgs() {
    let cases: &[(&str, &[&str])] = &[
        ("data", &["-p", "s.qcow2"]),
        ("quiet wins", &["-p", "-q", "s.qcow2"]),
        ("no data", &["-p", "e.qcow2"]),
    ];
    let dir = tempdir();
    let d = dir.path();
    build(
        d,
        &format!("{QCOW2_DATA}\nqemu-img create -q -f qcow2 e.qcow2 3M"),
        "progress",
    );
    for (name, args) in cases {
        let mut qargs = vec!["convert"];
        qargs.extend_from_slice(args);
        let mut dargs = qargs.clone();
        qargs.push("q.out");
        dargs.push("d.out");
        let q = qemu_img(d, &qargs).ok();
        let r = diskforge(d, &dargs).ok();
        assert_eq!(r.stdout, q.stdout, "{name}");
    }
}

#[test]
fn errors_in_qemu_img_words() {
    // (name, arguments, exit status)
    let cases: &[(&str, &[&str], i32)] = &[
        ("missing source", &["nonexistent.qcow2", "o.raw"], 1),
        ("unknown -O", &["-O", "foo", "s.raw", "o.raw"], 1),
        ("no output", &["s.raw"], 1),
        ("bad -S", &["-S", "3", "s.raw", "o.raw"], 1),
        ("-S too large", &["-S", "32M", "s.raw", "o.raw"], 1),
        ("-m 0", &["-m", "0", "s.raw", "o.raw"], 1),
        ("-m 17", &["-m", "17", "s.raw", "o.raw"], 1),
        ("wrong -f", &["-f", "qcow2", "s.raw", "o.raw"], 1),
        (
            "--target-is-zero without -n",
            &["--target-is-zero", "s.raw", "o.raw"],
            1,
        ),
        ("-n with a missing target", &["-n", "s.raw", "o.raw"], 1),
        ("target is the source", &["s.raw", "s.raw"], 1),
        (
            "target is the second source",
            &["s.raw", "b.qcow2", "b.qcow2"],
            1,
        ),
        ("target is a backing file", &["b.qcow2", "s.raw"], 1),
        ("-n target is the source", &["-n", "s.raw", "s.raw"], 1),
        (
            "-n target smaller than the source",
            &["-n", "s.raw", "small.raw"],
            1,
        ),
    ];
    let dir = tempdir();
    let d = dir.path();
    build(
        d,
        "qemu-img create -q -f raw s.raw 1M
        qemu-io -f raw -c 'write -P 0x5 0 4k' s.raw
        qemu-img create -q -f qcow2 -b s.raw -F raw b.qcow2
        qemu-img create -q -f raw small.raw 512k",
        "errors",
    );
    let before = common::read(&d.join("s.raw"));
    for (name, args, code) in cases {
        let mut full = vec!["convert"];
        full.extend_from_slice(args);
        let q = qemu_img(d, &full);
        let r = diskforge(d, &full);
        assert_eq!(q.code, *code, "{name}: qemu-img {q:?}");
        assert_eq!(r.code, *code, "{name}: {r:?}");
        assert_eq!(
            r.stderr,
            q.stderr.replace("qemu-img: ", "diskforge: "),
            "{name}"
        );
        assert!(!d.join("o.raw").exists(), "{name}: output left behind");
        assert!(
            common::read(&d.join("s.raw")) == before,
            "{name}: source changed"
        );
    }
}

#[test]
fn no_create_writes_into_the_existing_target() {
    // (name, extra arguments)
    let cases: &[(&str, &[&str])] = &[
        ("-n", &["-n"]),
        ("-n --target-is-zero", &["-n", "--target-is-zero"]),
    ];
    for (name, extra) in cases {
        let dir = tempdir();
        let d = dir.path();
        build(
            d,
            &format!(
                "{QCOW2_DATA}
                qemu-img create -q -f raw t.raw 64M
                qemu-io -f raw -c 'write -P 0xee 0 64M' t.raw"
            ),
            name,
        );
        let mut args = vec!["convert"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-O", "raw", "s.qcow2", "t.raw"]);
        diskforge(d, &args).ok();
        let c = qemu_img(d, &["compare", "-F", "raw", "s.qcow2", "t.raw"]);
        let want = if extra.contains(&"--target-is-zero") {
            1
        } else {
            0
        };
        assert_eq!(c.code, want, "{name}: {c:?}");
    }
}
