//! Image locks as QEMU's `file` driver takes them, so that diskforge and
//! QEMU processes (VMs, qemu-img, qemu-io, qemu-nbd) see each other.
//!
//! QEMU describes what a user of an image does with a set of
//! *permissions* (consistent read, write, write unchanged, resize) and
//! what it lets others do with a set of *shared* permissions. On Linux it
//! publishes both with open file description (OFD) byte-range locks on
//! the image file itself, all of them shared (`F_RDLCK`) locks of one
//! byte:
//!
//! - byte 100 + bit: "I hold this permission";
//! - byte 200 + bit: "I do not let others hold this permission".
//!
//! Taking permissions is two steps, in this order: lock one's own bytes,
//! then test (with `F_OFD_GETLK` and an exclusive lock) that no one else
//! holds a byte that conflicts: 200 + bit for each permission wanted
//! (someone refuses to share it: `Failed to get "write" lock`), 100 + bit
//! for each permission not shared (someone holds it: `Failed to get
//! shared "write" lock`). A failed test releases what was locked.
//!
//! Locks belong to the open file description: they last while any
//! duplicate of the descriptor stays open, and vanish when the process
//! exits, however it exits.

use std::fs::File;
use std::os::fd::AsRawFd;

/// QEMU's `BLK_PERM_*` bits, in bit order (bit `i` locks byte 100 + i
/// and 200 + i), with the names QEMU prints.
const PERM_NAMES: [&str; 4] = ["consistent read", "write", "write unchanged", "resize"];

/// Byte offsets of the two lock families (QEMU's `RAW_LOCK_PERM_BASE`
/// and `RAW_LOCK_SHARED_BASE`; libvirt uses byte 0).
const PERM_BASE: i64 = 100;
const SHARED_BASE: i64 = 200;

/// A set of QEMU block permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perm(u8);

impl Perm {
    pub const NONE: Perm = Perm(0);
    pub const CONSISTENT_READ: Perm = Perm(1 << 0);
    pub const WRITE: Perm = Perm(1 << 1);
    pub const WRITE_UNCHANGED: Perm = Perm(1 << 2);
    pub const RESIZE: Perm = Perm(1 << 3);
    pub const ALL: Perm = Perm(0x0f);

    /// Both sets.
    pub const fn union(self, other: Perm) -> Perm {
        Perm(self.0 | other.0)
    }

    /// The permissions not in this set.
    pub const fn complement(self) -> Perm {
        Perm(!self.0 & Perm::ALL.0)
    }

    fn bits(self) -> impl Iterator<Item = usize> {
        (0..PERM_NAMES.len()).filter(move |i| self.0 & (1 << i) != 0)
    }
}

/// What a user of an image holds: QEMU's (perm, shared) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Permissions held.
    pub perm: Perm,
    /// Permissions others may hold at the same time.
    pub shared: Perm,
}

impl Access {
    /// `raw_co_create`, the file driver's create: write and resize,
    /// sharing everything but resize. Every qemu-img create starts so.
    pub const CREATE: Access = Access {
        perm: Perm::WRITE.union(Perm::RESIZE),
        shared: Perm::RESIZE.complement(),
    };
    /// The file under a format (qcow2, vmdk...) opened read-write: its
    /// metadata must stay consistent, so no one else may write or resize.
    pub const FORMAT_WRITE: Access = Access {
        perm: Perm::CONSISTENT_READ.union(Perm::WRITE).union(Perm::RESIZE),
        shared: Perm::WRITE.union(Perm::RESIZE).complement(),
    };
    /// The file under a format opened read-only by `qemu-img info`: no
    /// permission held, but no one else may write or resize.
    pub const FORMAT_READ: Access = Access {
        perm: Perm::NONE,
        shared: Perm::WRITE.union(Perm::RESIZE).complement(),
    };
    /// Read-only with everything shared (`-U`/`--force-share`, a raw
    /// image opened by `info`, a backing file read by `create`): takes
    /// no lock at all.
    pub const SHARED: Access = Access {
        perm: Perm::NONE,
        shared: Perm::ALL,
    };

    /// Both accesses at once (the union of what several phases hold).
    pub const fn union(self, other: Access) -> Access {
        Access {
            perm: self.perm.union(other.perm),
            shared: Perm(self.shared.0 & other.shared.0),
        }
    }
}

/// Why a lock could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockError {
    /// Someone refuses to share a permission we want, or holds one we do
    /// not share: QEMU's `Failed to get ["shared "]"NAME" lock`.
    Conflict { name: &'static str, shared: bool },
    /// The system refused a lock operation (`Failed to lock byte N: ...`).
    System { byte: i64, error: String },
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Conflict { name, shared } => {
                let shared = if *shared { "shared " } else { "" };
                write!(f, "Failed to get {shared}\"{name}\" lock")
            }
            LockError::System { byte, error } => write!(f, "Failed to lock byte {byte}: {error}"),
        }
    }
}

impl LockError {
    /// QEMU's message with its hint line: `Failed to get "write" lock`,
    /// then `Is another process using the image [NAME]?` (the hint only
    /// for conflicts).
    pub fn message(&self, filename: &str) -> String {
        match self {
            LockError::Conflict { .. } => {
                format!("{self}\nIs another process using the image [{filename}]?")
            }
            LockError::System { .. } => self.to_string(),
        }
    }
}

/// Takes `access` on `file` as QEMU does: lock our bytes, then test for
/// conflicting locks of other open file descriptions. On a conflict the
/// bytes locked here are released again and the file is left as it was.
pub fn acquire(file: &File, access: Access) -> Result<(), LockError> {
    let fd = file.as_raw_fd();
    let held = access.perm;
    let unshared = access.shared.complement();
    let mut taken = Vec::new();
    let result = (|| {
        for (base, set) in [(PERM_BASE, held), (SHARED_BASE, unshared)] {
            for i in set.bits() {
                let byte = base + i as i64;
                set_lock(fd, byte, libc::F_RDLCK).map_err(|e| LockError::System {
                    byte,
                    error: crate::error::describe_io(&e),
                })?;
                taken.push(byte);
            }
        }
        for i in held.bits() {
            if is_locked_by_others(fd, SHARED_BASE + i as i64) {
                return Err(LockError::Conflict {
                    name: PERM_NAMES[i],
                    shared: false,
                });
            }
        }
        for i in unshared.bits() {
            if is_locked_by_others(fd, PERM_BASE + i as i64) {
                return Err(LockError::Conflict {
                    name: PERM_NAMES[i],
                    shared: true,
                });
            }
        }
        Ok(())
    })();
    if result.is_err() {
        for byte in taken {
            let _ = set_lock(fd, byte, libc::F_UNLCK);
        }
    }
    result
}

/// Whether the kernel has OFD locks at all (QEMU's `qemu_has_ofd_lock`,
/// which asks with `F_OFD_GETLK` on /dev/null); where it has not, QEMU
/// (`locking=auto`) does not lock, and neither does diskforge.
fn kernel_has_ofd_locks() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        let Ok(null) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        else {
            return false;
        };
        let mut fl = flock(0, libc::F_WRLCK);
        fl.l_len = 0;
        // SAFETY: F_OFD_GETLK reads and writes one `struct flock` we own.
        unsafe { libc::fcntl(null.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) == 0 }
    })
}

/// Takes `access` unless the kernel has no OFD locks (then, like QEMU's
/// `locking=auto`, it goes on without locks). A file system that refuses
/// locks is an error, as it is for QEMU (`Failed to lock byte 100`).
pub fn acquire_if_supported(file: &File, access: Access) -> Result<(), LockError> {
    if access == Access::SHARED || !kernel_has_ofd_locks() {
        return Ok(());
    }
    acquire(file, access)
}

fn flock(byte: i64, kind: i32) -> libc::flock {
    // SAFETY: `struct flock` is plain data; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte;
    fl.l_len = 1;
    fl
}

fn set_lock(fd: i32, byte: i64, kind: i32) -> std::io::Result<()> {
    let fl = flock(byte, kind);
    loop {
        // SAFETY: F_OFD_SETLK reads one `struct flock` we own.
        if unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// True when another open file description holds a lock on `byte` (an
/// exclusive lock there would be refused). Our own locks never count.
fn is_locked_by_others(fd: i32, byte: i64) -> bool {
    let mut fl = flock(byte, libc::F_WRLCK);
    // SAFETY: F_OFD_GETLK reads and writes one `struct flock` we own.
    let rc = unsafe { libc::fcntl(fd, libc::F_OFD_GETLK, &mut fl) };
    rc == 0 && fl.l_type != libc::F_UNLCK as libc::c_short
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &std::path::Path) -> File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap()
    }

    #[test]
    fn accesses_conflict_as_in_qemu() {
        use Access as A;
        let writer_present = LockError::Conflict {
            name: "write",
            shared: true,
        };
        let cases: &[(&str, A, A, Option<LockError>)] = &[
            (
                "create against a format writer",
                A::FORMAT_WRITE,
                A::CREATE,
                Some(LockError::Conflict {
                    name: "write",
                    shared: false,
                }),
            ),
            (
                "info against a format writer",
                A::FORMAT_WRITE,
                A::FORMAT_READ,
                Some(writer_present.clone()),
            ),
            (
                "info -U against a format writer",
                A::FORMAT_WRITE,
                A::SHARED,
                None,
            ),
            ("two infos", A::FORMAT_READ, A::FORMAT_READ, None),
            (
                "a second create",
                A::CREATE,
                A::CREATE,
                Some(LockError::Conflict {
                    name: "resize",
                    shared: false,
                }),
            ),
            (
                "info during a create",
                A::CREATE,
                A::FORMAT_READ,
                Some(writer_present),
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        for (name, first, second, want) in cases {
            let path = dir.path().join("img");
            let a = open(&path);
            let b = open(&path);
            acquire(&a, *first).unwrap_or_else(|e| panic!("{name}: first: {e}"));
            assert_eq!(acquire(&b, *second).err(), *want, "{name}");
            drop((a, b));
            std::fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn a_refused_lock_leaves_no_byte_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        let holder = open(&path);
        acquire(&holder, Access::FORMAT_WRITE).unwrap();
        let late = open(&path);
        assert!(acquire(&late, Access::CREATE).is_err());
        drop(holder);
        // Had `late` kept byte 203, this create-vs-create would fail.
        let third = open(&path);
        acquire(&third, Access::CREATE).unwrap();
    }
}
