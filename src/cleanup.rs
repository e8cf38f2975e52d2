//! Removing what a command made when it fails or is interrupted.
//!
//! A command that creates files (`create`, later `convert`, `register`'s
//! temporary files) registers each new file here with [`remove_on_failure`]
//! and keeps the returned [`Pending`] until the work is done: on success
//! it calls [`Pending::keep`], on failure [`Pending::remove`]. If SIGINT,
//! SIGTERM or SIGHUP arrives meanwhile, every registered file is removed
//! and the process then dies of that signal, as it would have without
//! diskforge's handler (so shells see 130, 143 or 129, and qemu-img's
//! callers the status they know).
//!
//! Only files this run created are ever registered, and a file is
//! removed only while its name still leads to the same inode: a name
//! someone replaced meanwhile is left alone.
//!
//! Work that is not a file (`register`'s image record on a registry) is
//! undone on a signal by a hook given to [`on_signal`]: it runs on the
//! signal thread (an ordinary thread, so it may do bounded I/O such as an
//! HTTP DELETE with a short deadline) before the files are removed, and
//! it is dropped unrun once its [`Hook`] is disarmed or dropped.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, Once};

/// The signals that clean up before they end the process.
const CLEANUP_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

struct Entry {
    id: u64,
    path: PathBuf,
    dev: u64,
    ino: u64,
}

/// A cleanup to run on a signal.
type HookFn = Box<dyn FnOnce() + Send>;

struct Registry {
    next_id: u64,
    entries: Vec<Entry>,
    hooks: Vec<(u64, HookFn)>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next_id: 0,
    entries: Vec::new(),
    hooks: Vec::new(),
});
static INSTALL: Once = Once::new();
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A cleanup signal arrived: long work (an upload) should stop now.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

fn registry() -> MutexGuard<'static, Registry> {
    // A panic while the lock was held leaves the list usable.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the thread that turns SIGINT, SIGTERM and SIGHUP into cleanup
/// followed by death by the same signal. Signals ignored when diskforge
/// started (`nohup`, background jobs of a non-interactive shell) stay
/// ignored. Called once, by `main`; later calls do nothing.
pub fn install_signal_handlers() {
    INSTALL.call_once(|| {
        let wanted: Vec<i32> = CLEANUP_SIGNALS
            .into_iter()
            .filter(|&s| !is_ignored(s))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let Ok(mut signals) = signal_hook::iterator::Signals::new(&wanted) else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("cleanup-on-signal".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
                    remove_all();
                    let _ = signal_hook::low_level::emulate_default_handler(sig);
                    // Not reached unless the default action was refused.
                    std::process::exit(128 + sig);
                }
            });
        drop(spawned);
    });
}

/// Whether `sig` was set to be ignored before diskforge started.
fn is_ignored(sig: i32) -> bool {
    // SAFETY: sigaction with a null new action only reads the current one
    // into a zeroed struct we own.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Runs every armed hook (newest first), then removes every registered
/// file (the signal path). The hooks run without the lock held, so a
/// hook may itself register or disarm.
fn remove_all() {
    run_hooks();
    let mut reg = registry();
    for e in reg.entries.drain(..).rev() {
        remove_if_same(&e);
    }
}

fn run_hooks() {
    let hooks: Vec<(u64, HookFn)> = registry().hooks.drain(..).rev().collect();
    for (_, hook) in hooks {
        hook();
    }
}

/// A cleanup armed by [`on_signal`]: it runs if SIGINT, SIGTERM or SIGHUP
/// arrives while the `Hook` lives; [`Hook::disarm`] or dropping it takes
/// it back unrun.
#[must_use = "the hook is disarmed when this is dropped"]
pub struct Hook {
    id: u64,
}

/// Arms `cleanup` to run (once, on the signal thread) if a cleanup signal
/// arrives before the returned [`Hook`] is disarmed. Keep it bounded: the
/// process dies of the signal only after it returns.
pub fn on_signal(cleanup: impl FnOnce() + Send + 'static) -> Hook {
    let mut reg = registry();
    let id = reg.next_id;
    reg.next_id += 1;
    reg.hooks.push((id, Box::new(cleanup)));
    Hook { id }
}

impl Hook {
    /// The work is settled: the cleanup will not run.
    pub fn disarm(self) {}
}

impl Drop for Hook {
    fn drop(&mut self) {
        registry().hooks.retain(|(id, _)| *id != self.id);
    }
}

fn remove_if_same(e: &Entry) {
    if let Ok(m) = std::fs::symlink_metadata(&e.path)
        && m.is_file()
        && m.dev() == e.dev
        && m.ino() == e.ino
    {
        let _ = std::fs::remove_file(&e.path);
    }
}

/// A file registered for removal: removed by [`Pending::remove`] or a
/// signal, kept by [`Pending::keep`]. Dropping it without either keeps
/// the file (an early return must not delete a finished image).
#[must_use = "call keep() on success or remove() on failure"]
pub struct Pending {
    id: u64,
}

/// Registers `path`, a regular file this run has just created (and
/// still has open as `file`), for removal on failure or signal. The
/// file's identity is taken from the open descriptor, so a name that is
/// later made to point elsewhere is never removed.
pub fn remove_on_failure(path: &Path, file: &std::fs::File) -> std::io::Result<Pending> {
    let m = file.metadata()?;
    let mut reg = registry();
    let id = reg.next_id;
    reg.next_id += 1;
    reg.entries.push(Entry {
        id,
        path: path.to_path_buf(),
        dev: m.dev(),
        ino: m.ino(),
    });
    Ok(Pending { id })
}

impl Pending {
    fn take(&self) -> Option<Entry> {
        let mut reg = registry();
        let i = reg.entries.iter().position(|e| e.id == self.id)?;
        Some(reg.entries.remove(i))
    }

    /// The work succeeded: the file stays.
    pub fn keep(self) {
        self.take();
    }

    /// The work failed: the file goes (if it is still the one created).
    pub fn remove(self) {
        if let Some(e) = self.take() {
            remove_if_same(&e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_only_the_file_that_was_registered() {
        let dir = tempfile::tempdir().unwrap();
        let cases: &[(&str, bool, bool, bool)] = &[
            // name, replace the name before cleanup, call remove, file left
            ("removed on failure", false, true, false),
            ("kept on success", false, false, true),
            ("a replaced name is left alone", true, true, true),
        ];
        for (name, replace, remove, left) in cases {
            let path = dir.path().join("f");
            let file = std::fs::File::create(&path).unwrap();
            let pending = remove_on_failure(&path, &file).unwrap();
            if *replace {
                std::fs::remove_file(&path).unwrap();
                std::fs::write(&path, b"someone else's").unwrap();
            }
            if *remove {
                pending.remove();
            } else {
                pending.keep();
            }
            assert_eq!(path.exists(), *left, "{name}");
            let _ = std::fs::remove_file(&path);
        }
    }

    #[test]
    fn a_disarmed_hook_does_not_run() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static RAN: AtomicUsize = AtomicUsize::new(0);
        let armed = on_signal(|| {
            RAN.fetch_add(1, Ordering::SeqCst);
        });
        on_signal(|| {
            RAN.fetch_add(10, Ordering::SeqCst);
        })
        .disarm();
        run_hooks();
        drop(armed);
        run_hooks();
        assert_eq!(RAN.load(Ordering::SeqCst), 1);
    }
}
