//! Helpers shared by the integration tests: run diskforge and the real
//! qemu tools, compare their results. A missing qemu tool fails the test
//! loudly: it is never skipped.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The diskforge binary built for these tests.
pub fn diskforge_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_diskforge"))
}

/// Output of a finished command, with both streams as text.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics with both streams unless the command exited 0.
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "command failed: {self:#?}");
        self
    }
}

/// Runs `program args...` in `dir`.
pub fn run_in(dir: &Path, program: &Path, args: &[&str]) -> Run {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    Run::from(out)
}

/// Runs diskforge with `args` in `dir`.
pub fn diskforge(dir: &Path, args: &[&str]) -> Run {
    run_in(dir, &diskforge_bin(), args)
}

/// Path of a qemu tool; panics (fails the test) when it is not installed.
pub fn qemu_tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed: run the README's test command (it installs qemu-utils)");
}

/// Runs qemu-img with `args` in `dir`.
pub fn qemu_img(dir: &Path, args: &[&str]) -> Run {
    run_in(dir, &qemu_tool("qemu-img"), args)
}

/// Runs qemu-io with `args` in `dir`.
pub fn qemu_io(dir: &Path, args: &[&str]) -> Run {
    run_in(dir, &qemu_tool("qemu-io"), args)
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("diskforge-test")
        .tempdir()
        .expect("temp dir")
}

/// `qemu-img info --output=json` of `file` (in `dir`), parsed.
pub fn qemu_info_json(dir: &Path, file: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["info", "--output=json"];
    args.extend_from_slice(extra);
    args.push(file);
    let r = qemu_img(dir, &args).ok();
    serde_json::from_str(&r.stdout).expect("qemu-img info JSON")
}

/// Removes the keys that differ between two images of the same content
/// (file name, allocation) from an info JSON value.
pub fn without_keys(mut v: serde_json::Value, keys: &[&str]) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value, keys: &[&str]) {
        match v {
            serde_json::Value::Object(m) => {
                for k in keys {
                    m.remove(*k);
                }
                for (_, x) in m.iter_mut() {
                    strip(x, keys);
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| strip(x, keys)),
            _ => {}
        }
    }
    strip(&mut v, keys);
    v
}

/// Allocated bytes of a file (st_blocks × 512).
pub fn allocated_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).expect("metadata").blocks() * 512
}

/// The bytes of a file.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Index of the first differing byte, or None when equal.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    if a.len() != b.len() {
        let n = a.len().min(b.len());
        return Some(a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(n));
    }
    a.iter().zip(b).position(|(x, y)| x != y)
}

/// The address-space limit every run gets.
const ADDRESS_SPACE: u64 = 256 << 20;
/// What a limited run left: its exit status and its output.
pub struct Limited {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs diskforge with `args` in `dir` under the address-space limit and
/// `time_limit` (hostile-input tests). Panics on a hang or a death by
/// signal.
pub fn run_limited(dir: &Path, args: &[&str], time_limit: std::time::Duration) -> Limited {
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let out_path = dir.join(".stdout");
    let err_path = dir.join(".stderr");
    let mut cmd = Command::new(diskforge_bin());
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the
    // child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: ADDRESS_SPACE as libc::rlim_t,
                rlim_max: ADDRESS_SPACE as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn diskforge");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > time_limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("diskforge {args:?} hung (killed after {time_limit:?})");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let code = status
        .code()
        .unwrap_or_else(|| panic!("diskforge {args:?} died by a signal: {status:?}"));
    Limited {
        code,
        stdout: String::from_utf8_lossy(&std::fs::read(&out_path).unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&std::fs::read(&err_path).unwrap()).into_owned(),
    }
}
