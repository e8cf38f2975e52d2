//! Data safety against the real qemu tools: image locks as qemu's file
//! driver takes them (against a running qemu-io, both ways round), block
//! and character devices written as qemu-img writes them and never
//! removed, only files this run created removed on failure or signal,
//! and a closed standard output that costs nothing but the text.
//!
//! These tests need root (losetup, mknod, unshare): they fail, never
//! skip, without it.

mod common;

use common::{Run, diskforge_bin, qemu_tool, tempdir};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The two programs compared.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tool {
    QemuImg,
    Diskforge,
}

impl Tool {
    fn path(self) -> PathBuf {
        match self {
            Tool::QemuImg => qemu_tool("qemu-img"),
            Tool::Diskforge => diskforge_bin(),
        }
    }
}

fn run(tool: Tool, dir: &Path, args: &[&str]) -> Run {
    common::run_in(dir, &tool.path(), args)
}

/// Exit status and both streams, with the program name taken out of
/// error lines so that the two tools' results compare.
fn outcome(r: &Run) -> (i32, String, String) {
    let stderr = r
        .stderr
        .lines()
        .map(|l| {
            l.strip_prefix("qemu-img: ")
                .or_else(|| l.strip_prefix("diskforge: "))
                .unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n");
    (r.code, r.stdout.clone(), stderr)
}

fn sh(script: &str) -> Run {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("run sh");
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(r.code, 0, "{script}: {r:#?}");
    r
}

/// qemu-io's `sleep` counts milliseconds: 600000 keeps a holder for ten
/// minutes, far longer than any test needs (it is killed at the end).
///
/// A process killed (SIGKILL) and reaped when dropped, so that a failing
/// assertion never leaves a qemu-io or a create running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(dir: &Path, program: &Path, args: &[&str]) -> Running {
    let child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    Running(child)
}

/// The bytes of `path` that OFD locks cover, from /proc/locks (lines
/// such as `12: OFDLCK ADVISORY  READ -1 fe:00:10010653 100 101`).
fn locked_bytes(path: &Path) -> Vec<u64> {
    let Ok(m) = std::fs::metadata(path) else {
        return Vec::new();
    };
    let ino = m.ino().to_string();
    let mut bytes = Vec::new();
    for line in std::fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(i) = f.iter().position(|w| *w == "OFDLCK") else {
            continue;
        };
        // OFDLCK ADVISORY READ -1 MAJ:MIN:INO START END
        let (Some(id), Some(a), Some(b)) = (f.get(i + 4), f.get(i + 5), f.get(i + 6)) else {
            continue;
        };
        if id.rsplit(':').next() != Some(ino.as_str()) {
            continue;
        }
        if let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>()) {
            bytes.extend(a..=b.min(a + 1000));
        }
    }
    bytes.sort_unstable();
    bytes.dedup();
    bytes
}

/// Waits until exactly the lock bytes `want` are held on `path` (QEMU
/// takes and drops locks while it opens an image, and a create goes
/// through phases: the test must act in the state it means).
fn wait_for_locks(path: &Path, want: &[u64], holder: &mut Running) {
    let start = Instant::now();
    loop {
        if locked_bytes(path) == want {
            return;
        }
        if let Ok(Some(status)) = holder.0.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = holder.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("the lock holder exited ({status}) before locking: {err}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the locks on {} are {:?}, not {want:?}",
            path.display(),
            locked_bytes(path)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Lock bytes of a qcow2 image opened read-write by QEMU (and of a
/// qcow2 create in its last phase): consistent read, write, resize held
/// (100, 101, 103); write and resize not shared (201, 203).
const QCOW2_WRITER: &[u64] = &[100, 101, 103, 201, 203];
/// A qcow2 image opened read-only (qemu-io -r).
const QCOW2_READER: &[u64] = &[100, 201, 203];
/// A raw image opened read-write: consistent read and write, all shared.
const RAW_WRITER: &[u64] = &[100, 101];
/// The file driver's create (raw): write and resize held, resize not shared.
const FILE_CREATE: &[u64] = &[101, 103, 203];

fn sha(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn commands_on_an_image_a_qemu_io_holds_fail_as_qemu_imgs_do() {
    // (holder's qemu-io options) x (command): each command run by
    // diskforge, then by qemu-img, on a fresh image a new qemu-io holds.
    // Same exit status and messages; an image diskforge refused to touch
    // must be byte for byte what it was. (Where qemu-img's first create
    // phase passes and a later one fails, qemu-img has already emptied
    // the image, and its qcow2 driver then unlinks it; diskforge takes
    // every lock before it empties anything.)
    let holders: &[(&str, &[&str], &[u64])] = &[
        ("qcow2 read-write", &[], QCOW2_WRITER),
        ("qcow2 read-only", &["-r"], QCOW2_READER),
        ("raw read-write", &["-f", "raw"], RAW_WRITER),
    ];
    let commands: &[&[&str]] = &[
        &["create", "-f", "qcow2", "disk.qcow2", "1G"],
        &["create", "-f", "raw", "disk.qcow2", "1G"],
        &["create", "-f", "vmdk", "disk.qcow2", "1G"],
        &["info", "disk.qcow2"],
        &["info", "-U", "disk.qcow2"],
        &["info", "--force-share", "--output=json", "disk.qcow2"],
        &["info", "-f", "raw", "disk.qcow2"],
        &["info", "--backing-chain", "disk.qcow2"],
        &["check", "disk.qcow2"],
        &["check", "-U", "disk.qcow2"],
        &["check", "-r", "leaks", "disk.qcow2"],
        &["check", "-U", "-r", "all", "disk.qcow2"],
        &["map", "--output=json", "disk.qcow2"],
        &["map", "-U", "disk.qcow2"],
        &["compare", "disk.qcow2", "disk.qcow2"],
        &["compare", "-U", "disk.qcow2", "disk.qcow2"],
    ];
    let d = tempdir();
    let img = d.path().join("disk.qcow2");
    for (holder, opts, held) in holders {
        for cmd in commands {
            let mut got = None;
            for tool in [Tool::Diskforge, Tool::QemuImg] {
                let _ = std::fs::remove_file(&img);
                common::qemu_img(
                    d.path(),
                    &["create", "-q", "-f", "qcow2", "disk.qcow2", "64M"],
                )
                .ok();
                let mut args: Vec<&str> = opts.to_vec();
                args.extend(["-c", "sleep 600000", "disk.qcow2"]);
                let mut io = spawn(d.path(), &qemu_tool("qemu-io"), &args);
                wait_for_locks(&img, held, &mut io);
                let before = sha(&img);
                let r = outcome(&run(tool, d.path(), cmd));
                if tool == Tool::Diskforge && r.0 != 0 {
                    assert!(
                        sha(&img) == before,
                        "holder {holder}: {cmd:?} refused but changed the image"
                    );
                }
                match &got {
                    None => got = Some(r),
                    Some(g) => assert_eq!(*g, r, "holder {holder}: {cmd:?}: diskforge, qemu-img"),
                }
                drop(io);
            }
        }
    }
}

#[test]
fn qemu_sees_the_locks_of_a_create_in_progress() {
    // A long create (full preallocation of 6 GiB) by each tool; while it
    // writes, qemu-io, qemu-img info and a second create of the same
    // path by the same tool must meet the same refusals; the second
    // create must not remove the first one's file.
    let probes: &[(&str, &[&str])] = &[
        ("qemu-io", &["-c", "quit", "z.img"]),
        ("qemu-io", &["-r", "-c", "quit", "z.img"]),
        ("qemu-img", &["info", "z.img"]),
        ("qemu-img", &["info", "-U", "--output=json", "z.img"]),
    ];
    for (fmt, held) in [("qcow2", QCOW2_WRITER), ("raw", FILE_CREATE)] {
        let mut results: Vec<Vec<(i32, String, String)>> = Vec::new();
        for tool in [Tool::QemuImg, Tool::Diskforge] {
            let d = tempdir();
            let img = d.path().join("z.img");
            let create = [
                "create",
                "-q",
                "-f",
                fmt,
                "-o",
                "preallocation=full",
                "z.img",
                "6G",
            ];
            let mut long = spawn(d.path(), &tool.path(), &create);
            wait_for_locks(&img, held, &mut long);
            let mut seen = Vec::new();
            for (prog, args) in probes {
                let r = common::run_in(d.path(), &qemu_tool(prog), args);
                // qemu-io's raw probing warning is not about locks.
                // What a half-written image contains is not compared.
                let mut o = outcome(&r);
                o.1.clear();
                o.2 =
                    o.2.lines()
                        .filter(|l| !l.starts_with("WARNING:") && !l.starts_with("  "))
                        .collect::<Vec<_>>()
                        .join("\n");
                seen.push(o);
            }
            let second = run(tool, d.path(), &["create", "-q", "-f", fmt, "z.img", "1M"]);
            seen.push(outcome(&second));
            assert!(
                img.exists(),
                "{tool:?} {fmt}: a refused create removed the file"
            );
            assert_eq!(
                long.0.try_wait().expect("wait"),
                None,
                "{tool:?} {fmt}: the long create ended before the probes were done"
            );
            results.push(seen);
        }
        assert_eq!(results[1], results[0], "{fmt}: diskforge vs qemu-img");
    }
}

/// A loop device over a file in a temporary directory, detached on drop.
struct Loop {
    dev: PathBuf,
    _dir: tempfile::TempDir,
}

impl Loop {
    fn new(size: u64) -> Loop {
        Loop::with_options(size, "")
    }

    /// `losetup` with extra options (`-r`: a read-only device).
    fn with_options(size: u64, options: &str) -> Loop {
        let dir = tempdir();
        let back = dir.path().join("backing");
        std::fs::File::create(&back).unwrap().set_len(size).unwrap();
        let r = sh(&format!("losetup {options} -f --show {}", back.display()));
        Loop {
            dev: PathBuf::from(r.stdout.trim()),
            _dir: dir,
        }
    }

    /// Fills the device with a non-zero pattern (old data a create must
    /// leave alone where qemu-img leaves it).
    fn fill(&self) {
        use std::io::Write;
        let len = std::fs::read(&self.dev).unwrap().len();
        let pattern: Vec<u8> = (0..len).map(|i| ((i * 7 + 3) & 0xff) as u8).collect();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.dev)
            .unwrap();
        f.write_all(&pattern).unwrap();
        f.sync_all().unwrap();
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

const SECTOR: usize = 512;

#[test]
fn devices_are_written_as_qemu_img_writes_them() {
    // Through a symlink to a loop device, as an LVM volume is usually
    // named: exit status, messages and the device's bytes must be
    // qemu-img's (sectors that differ between two qemu-img runs — random
    // UUIDs, timestamps — are left out of the comparison).
    let cases: &[(&str, &[&str])] = &[
        ("raw smaller than the device", &["-f", "raw", "link", "8M"]),
        ("raw the device's size", &["-f", "raw", "link", "16M"]),
        ("raw larger than the device", &["-f", "raw", "link", "1G"]),
        (
            "raw preallocated",
            &["-f", "raw", "-o", "preallocation=full", "link", "1M"],
        ),
        ("qcow2", &["-f", "qcow2", "link", "1G"]),
        (
            "qcow2 metadata",
            &["-f", "qcow2", "-o", "preallocation=metadata", "link", "8M"],
        ),
        ("qcow", &["-f", "qcow", "link", "1G"]),
        ("vmdk", &["-f", "vmdk", "link", "1G"]),
        (
            "vmdk stream",
            &[
                "-f",
                "vmdk",
                "-o",
                "subformat=streamOptimized",
                "link",
                "1G",
            ],
        ),
        ("vdi", &["-f", "vdi", "link", "1G"]),
        (
            "vdi static",
            &["-f", "vdi", "-o", "static=on", "link", "8M"],
        ),
        ("vpc", &["-f", "vpc", "link", "1G"]),
        (
            "vpc fixed",
            &[
                "-f",
                "vpc",
                "-o",
                "subformat=fixed,force_size=on",
                "link",
                "8M",
            ],
        ),
    ];
    let dev = Loop::new(16 << 20);
    let d = tempdir();
    let link = d.path().join("link");
    std::os::unix::fs::symlink(&dev.dev, &link).unwrap();
    for (name, args) in cases {
        let mut argv = vec!["create", "-q"];
        argv.extend_from_slice(args);
        let mut images = Vec::new();
        let mut outcomes = Vec::new();
        for tool in [Tool::QemuImg, Tool::QemuImg, Tool::Diskforge] {
            dev.fill();
            outcomes.push(outcome(&run(tool, d.path(), &argv)));
            images.push(std::fs::read(&dev.dev).unwrap());
            assert!(
                std::fs::symlink_metadata(&link)
                    .unwrap()
                    .file_type()
                    .is_symlink(),
                "{name}: {tool:?} removed the link"
            );
            assert!(
                std::fs::metadata(&dev.dev)
                    .unwrap()
                    .file_type()
                    .is_block_device(),
                "{name}: {tool:?} removed the device"
            );
        }
        assert_eq!(outcomes[2], outcomes[0], "{name}: exit status and messages");
        let (q1, q2, df) = (&images[0], &images[1], &images[2]);
        for s in 0..q1.len() / SECTOR {
            let r = s * SECTOR..(s + 1) * SECTOR;
            if q1[r.clone()] == q2[r.clone()] {
                assert!(
                    q1[r.clone()] == df[r.clone()],
                    "{name}: device sector {s} (offset {:#x}) differs from qemu-img's",
                    r.start
                );
            }
        }
    }
}

#[test]
fn a_read_only_device_is_refused_as_qemu_img_refuses_it() {
    let dev = Loop::with_options(1 << 20, "-r");
    let d = tempdir();
    std::os::unix::fs::symlink(&dev.dev, d.path().join("link")).unwrap();
    for fmt in ["raw", "qcow2", "vmdk"] {
        let args = ["create", "-q", "-f", fmt, "link", "512k"];
        let want = outcome(&run(Tool::QemuImg, d.path(), &args));
        let got = outcome(&run(Tool::Diskforge, d.path(), &args));
        assert_eq!(got, want, "{fmt}");
        assert_eq!(want.0, 1, "{fmt}: {want:?}");
        assert!(std::fs::symlink_metadata(d.path().join("link")).is_ok());
    }
}

#[test]
fn a_character_device_is_never_removed() {
    // In a private mount namespace, a tmpfs holding a copy of /dev/null
    // (1,3) and /dev/zero (1,5): every format is tried on them; the node
    // must survive, and where qemu-img's outcome is a plain refusal
    // (raw, vmdk) diskforge's must be the same.
    let d = tempdir();
    let mnt = d.path().join("ns");
    std::fs::create_dir(&mnt).unwrap();
    let q = qemu_tool("qemu-img");
    let df = diskforge_bin();
    let mut script = format!(
        "set -e; mount -t tmpfs none {m}; cd {m}; mknod null c 1 3; mknod zero c 1 5; set +e;\n",
        m = mnt.display()
    );
    for node in ["null", "zero"] {
        for fmt in ["raw", "qcow2", "qcow", "vmdk", "vdi", "vpc"] {
            for (tool, bin) in [("qemu-img", &q), ("diskforge", &df)] {
                script.push_str(&format!(
                    "out=$({bin} create -q -f {fmt} {node} 1G 2>&1); rc=$?; printf '%s\\n' \"$out\" | sed 's/^{tool}: //'; echo \"{tool} {fmt} {node} rc=$rc $(stat -c %F {node})\"\n",
                    bin = bin.display()
                ));
            }
        }
    }
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .expect("unshare");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    let results: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains(" rc="))
        .collect();
    assert_eq!(results.len(), 24, "{text}");
    for l in &results {
        assert!(
            l.ends_with("character special file"),
            "node removed: {l}\n{text}"
        );
    }
    for fmt in ["raw", "vmdk"] {
        for node in ["null", "zero"] {
            let block = |tool: &str| -> Vec<String> {
                let mut v = Vec::new();
                for (i, l) in lines.iter().enumerate() {
                    if l.starts_with(&format!("{tool} {fmt} {node} rc=")) {
                        v.push(l.replacen(tool, "", 1));
                        if i > 0 && !lines[i - 1].contains(" rc=") {
                            v.push(lines[i - 1].to_string());
                        }
                    }
                }
                v
            };
            assert_eq!(
                block("diskforge"),
                block("qemu-img"),
                "{fmt} on {node}\n{text}"
            );
        }
    }
}

#[test]
fn a_failed_create_removes_only_what_it_created() {
    // qcow2 refuses the size after the file is opened. qemu-img's qcow2
    // driver then unlinks whatever name it was given; diskforge removes
    // only a regular file this run created (README: a file that was
    // there is left, truncated, as qemu-img's other formats leave it).
    enum Before {
        Nothing,
        File,
        LinkToFile,
        DanglingLink,
    }
    let cases = [
        ("a new file is removed", Before::Nothing),
        ("an existing file is left", Before::File),
        ("a link to a file is left, and its file", Before::LinkToFile),
        (
            "a dangling link is left, its new target removed",
            Before::DanglingLink,
        ),
    ];
    for (name, before) in cases {
        let d = tempdir();
        let p = d.path();
        match before {
            Before::Nothing => {}
            Before::File => std::fs::write(p.join("x"), b"old").unwrap(),
            Before::LinkToFile => {
                std::fs::write(p.join("target"), b"old").unwrap();
                std::os::unix::fs::symlink("target", p.join("x")).unwrap();
            }
            Before::DanglingLink => std::os::unix::fs::symlink("target", p.join("x")).unwrap(),
        }
        let r = run(
            Tool::Diskforge,
            p,
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-o",
                "cluster_size=512",
                "x",
                "64T",
            ],
        );
        assert_eq!(
            r.stderr,
            "diskforge: x: The image size is too large for file format 'qcow2' (try using a larger cluster size)\n",
            "{name}"
        );
        let x = std::fs::symlink_metadata(p.join("x"));
        let target = std::fs::symlink_metadata(p.join("target"));
        match before {
            Before::Nothing => assert!(x.is_err(), "{name}"),
            Before::File => assert!(x.unwrap().is_file(), "{name}"),
            Before::LinkToFile => {
                assert!(x.unwrap().file_type().is_symlink(), "{name}");
                assert!(target.unwrap().is_file(), "{name}");
            }
            Before::DanglingLink => {
                assert!(x.unwrap().file_type().is_symlink(), "{name}");
                assert!(target.is_err(), "{name}");
            }
        }
    }
}

/// Waits until `path` exists and has grown past `min` bytes.
fn wait_for_growth(path: &Path, min: u64, child: &mut Running) {
    let start = Instant::now();
    while std::fs::metadata(path)
        .map(|m| m.blocks() * 512)
        .unwrap_or(0)
        <= min
    {
        assert_eq!(child.0.try_wait().expect("wait"), None, "ended too early");
        assert!(start.elapsed() < Duration::from_secs(60), "no growth");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_signal_during_a_create_removes_the_partial_image() {
    // qemu-img dies of the signal (and leaves its partial file);
    // diskforge dies of the same signal and removes the file it created.
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        for tool in [Tool::QemuImg, Tool::Diskforge] {
            let d = tempdir();
            let img = d.path().join("z.img");
            let mut c = spawn(
                d.path(),
                &tool.path(),
                &[
                    "create",
                    "-q",
                    "-f",
                    "raw",
                    "-o",
                    "preallocation=full",
                    "z.img",
                    "6G",
                ],
            );
            wait_for_growth(&img, 1 << 20, &mut c);
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.0.id() as i32, sig) };
            let status = c.0.wait().expect("wait");
            assert_eq!(
                status.signal(),
                Some(sig),
                "{tool:?} signal {sig}: {status}"
            );
            if tool == Tool::Diskforge {
                assert!(
                    !img.exists(),
                    "signal {sig}: the partial image is still there"
                );
            }
        }
    }
}

#[test]
fn a_closed_standard_output_is_not_an_error() {
    // Output into a pipe whose reader is gone (`... | true`): exit 0 and
    // the work done, as qemu-img; never a panic (exit 101).
    let d = tempdir();
    common::qemu_img(
        d.path(),
        &["create", "-q", "-f", "qcow2", "have.qcow2", "8M"],
    )
    .ok();
    let cases: &[(&str, &[&str], Option<&str>)] = &[
        (
            "create",
            &["create", "-f", "qcow2", "p.qcow2", "1G"],
            Some("p.qcow2"),
        ),
        (
            "create raw",
            &["create", "-f", "raw", "p.raw", "1G"],
            Some("p.raw"),
        ),
        ("create -o help", &["create", "-o", "help"], None),
        (
            "create -f qcow2 -o help",
            &["create", "-f", "qcow2", "-o", "help"],
            None,
        ),
        ("info", &["info", "have.qcow2"], None),
        ("info json", &["info", "--output=json", "have.qcow2"], None),
        (
            "register --dry-run",
            &[
                "register",
                "--os-image-url=http://127.0.0.1:9",
                "--dry-run",
                "have.qcow2",
            ],
            None,
        ),
    ];
    for (name, args, made) in cases {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = Command::new(diskforge_bin())
            .args(*args)
            .current_dir(d.path())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("run");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(f) = made {
            let info = common::qemu_img(d.path(), &["info", f]).ok();
            assert!(
                info.stdout.contains("virtual size: 1 GiB"),
                "{name}: {info:#?}"
            );
        }
    }
}

#[test]
fn concurrent_creates_of_one_path_leave_one_valid_image() {
    // Three creates of one path at once: each either wins (exit 0) or is
    // refused with qemu-img's lock message, and the image left by a
    // winner is whole. (Runs that lock at the very same moment can all be
    // refused, as qemu-img's can: only some round must have a winner.)
    let refusal = "diskforge: x.qcow2: Failed to get ";
    let hint = "Is another process using the image [x.qcow2]?";
    let mut rounds_won = 0;
    for round in 0..3 {
        let d = tempdir();
        let args = [
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "preallocation=metadata",
            "x.qcow2",
            "256G",
        ];
        let children: Vec<Child> = (0..3)
            .map(|_| {
                Command::new(diskforge_bin())
                    .args(args)
                    .current_dir(d.path())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        let mut ok = 0;
        for c in children {
            let out = c.wait_with_output().expect("wait");
            let err = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                ok += 1;
            } else {
                assert!(
                    err.starts_with(refusal) && err.contains(" lock\n") && err.contains(hint),
                    "round {round}: {err}"
                );
            }
        }
        if ok > 0 {
            rounds_won += 1;
            common::qemu_img(d.path(), &["check", "x.qcow2"]).ok();
            let info = common::qemu_img(d.path(), &["info", "x.qcow2"]).ok();
            assert!(info.stdout.contains("virtual size: 256 GiB"), "{info:#?}");
        }
    }
    assert!(rounds_won > 0, "every create of every round was refused");
}

#[test]
fn info_sees_locks_on_the_files_an_image_names() {
    // (what a qemu-io holds, info's arguments): a vmdk extent, a backing
    // file; diskforge's outcome must be qemu-img's.
    // (name, qemu-io's arguments, the lock bytes it takes, info's arguments)
    type Case = (
        &'static str,
        &'static [&'static str],
        &'static [u64],
        &'static [&'static str],
    );
    let cases: &[Case] = &[
        (
            "a vmdk extent",
            &["-f", "raw", "v-s002.vmdk"],
            RAW_WRITER,
            &["info", "v.vmdk"],
        ),
        (
            "a vmdk extent, -U",
            &["-f", "raw", "v-s002.vmdk"],
            RAW_WRITER,
            &["info", "-U", "v.vmdk"],
        ),
        (
            "a backing file",
            &["base.qcow2"],
            QCOW2_WRITER,
            &["info", "--backing-chain", "top.qcow2"],
        ),
        (
            "a backing file, top only",
            &["base.qcow2"],
            QCOW2_WRITER,
            &["info", "top.qcow2"],
        ),
    ];
    let d = tempdir();
    let p = d.path();
    common::qemu_img(p, &["create", "-q", "-f", "qcow2", "base.qcow2", "64M"]).ok();
    common::qemu_img(
        p,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "base.qcow2",
            "-F",
            "qcow2",
            "top.qcow2",
        ],
    )
    .ok();
    common::qemu_img(
        p,
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "subformat=twoGbMaxExtentSparse",
            "v.vmdk",
            "3G",
        ],
    )
    .ok();
    for (name, held, bytes, cmd) in cases {
        let mut args = vec!["-c", "sleep 600000"];
        args.extend_from_slice(held);
        let mut io = spawn(p, &qemu_tool("qemu-io"), &args);
        wait_for_locks(&p.join(held[held.len() - 1]), bytes, &mut io);
        let want = outcome(&run(Tool::QemuImg, p, cmd));
        let got = outcome(&run(Tool::Diskforge, p, cmd));
        assert_eq!(got, want, "{name}");
        drop(io);
    }
}
