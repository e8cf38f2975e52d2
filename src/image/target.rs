//! The files a `create` writes, opened as qemu's file drivers open them.
//!
//! - A regular file is opened without truncation, locked, checked for
//!   other users' locks, and only then emptied (qemu's `raw_co_create`):
//!   an image another process holds is never touched.
//! - A block or character device (an LVM volume, a loop device...) keeps
//!   its size: it is never truncated, a "resize" to at most its size does
//!   nothing and beyond it fails with qemu's "Cannot grow device files",
//!   and its first sector is zeroed as qemu's `host_device` create does.
//! - Whether this run created the file decides whether a failure may
//!   remove it: only a regular file that did not exist before is ever
//!   registered for removal (see [`crate::cleanup`]), never a device node,
//!   a symbolic link or a file that was already there.

use crate::cleanup::{self, Pending};
use crate::lock::{self, Access};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// qemu's sector: the unit of the first-sector zeroing on devices.
const SECTOR: u64 = 512;

/// What the opened file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Regular,
    /// A block or character device of this many bytes.
    Device(u64),
}

/// A file being written by `create`. Derefs to [`File`] for reads and
/// writes; [`TargetFile::set_len`] replaces `File::set_len` with qemu's
/// device rules.
#[derive(Debug)]
pub struct TargetFile {
    file: File,
    kind: Kind,
}

/// A device cannot be made larger than it is (qemu: "Cannot grow device
/// files"). Carried inside an `io::Error` so that writers need not know.
#[derive(Debug)]
pub struct CannotGrow;

impl std::fmt::Display for CannotGrow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cannot grow device files")
    }
}

impl std::error::Error for CannotGrow {}

impl std::ops::Deref for TargetFile {
    type Target = File;
    fn deref(&self) -> &File {
        &self.file
    }
}

impl TargetFile {
    /// Gives the file `len` bytes: `ftruncate` for a regular file; for a
    /// device nothing, unless `len` exceeds the device.
    pub fn set_len(&self, len: u64) -> io::Result<()> {
        match self.kind {
            Kind::Regular => self.file.set_len(len),
            Kind::Device(size) if len <= size => Ok(()),
            Kind::Device(_) => Err(io::Error::other(CannotGrow)),
        }
    }

    /// True for a block or character device.
    pub fn is_device(&self) -> bool {
        matches!(self.kind, Kind::Device(_))
    }

    /// A second descriptor on the same open file (same locks).
    pub fn try_clone_file(&self) -> io::Result<File> {
        self.file.try_clone()
    }
}

/// A file opened for writing, with what a failure must undo.
pub struct Opened {
    pub file: TargetFile,
    /// Set when this run created the file: remove it on failure.
    pub pending: Option<Pending>,
    /// The directory whose entry is new (to be synced), if any.
    pub new_entry_dir: Option<PathBuf>,
}

/// Why opening failed.
pub enum OpenError {
    /// The open itself (qemu: "Could not create 'NAME': why").
    Open(io::Error),
    /// Another process holds the file.
    Lock(lock::LockError),
    /// Emptying or zeroing the file failed.
    Prepare(io::Error),
    /// A block device set read-only (`blockdev --setro`, `losetup -r`).
    ReadOnlyDevice,
}

impl OpenError {
    /// qemu's words for a device it cannot open for writing: its generic
    /// create for `host_device` explains that it needed an existing,
    /// writable device.
    pub const READ_ONLY_DEVICE: &'static str = "Protocol driver 'host_device' does not support creating new images, \
so an existing image must be selected as the target; however, opening the given target as an \
existing image failed: The device is not writable: Permission denied";
}

/// Whether the kernel marks the block device read-only (`BLKROGET`):
/// opening it read-write succeeds, but every write would fail.
fn is_read_only_block_device(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    /// `_IO(0x12, 94)` from linux/fs.h.
    const BLKROGET: libc::c_ulong = 0x125e;
    let mut ro: libc::c_int = 0;
    // SAFETY: BLKROGET writes one int through a valid pointer.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKROGET as _, &mut ro) };
    rc == 0 && ro != 0
}

/// Opens (creating if needed) `path` for writing a new image, takes the
/// `accesses` in turn as qemu's create phases do (the first one decides
/// the message a conflict gets), and prepares the file: a regular file is
/// emptied, a device keeps its size and has its first sector zeroed.
pub fn open(path: &Path, accesses: &[Access]) -> Result<Opened, OpenError> {
    let (file, created_at) = open_or_create(path).map_err(OpenError::Open)?;
    for &access in accesses {
        lock::acquire_if_supported(&file, access).map_err(OpenError::Lock)?;
    }
    let meta = file.metadata().map_err(OpenError::Open)?;
    let t = meta.file_type();
    let kind = if t.is_block_device() || t.is_char_device() {
        if t.is_block_device() && is_read_only_block_device(&file) {
            return Err(OpenError::ReadOnlyDevice);
        }
        Kind::Device(device_size(&file).map_err(OpenError::Open)?)
    } else {
        Kind::Regular
    };
    // Registered only now, with the lock held: a file that another run
    // created and locked first is never ours to remove.
    let pending = match &created_at {
        Some(p) if kind == Kind::Regular => cleanup::remove_on_failure(p, &file).ok(),
        _ => None,
    };
    let target = TargetFile { file, kind };
    match kind {
        Kind::Regular => target.file.set_len(0),
        Kind::Device(size) => zero_first_sector(&target.file, size),
    }
    .map_err(OpenError::Prepare)?;
    let new_entry_dir = created_at.map(|p| match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    });
    Ok(Opened {
        file: target,
        pending,
        new_entry_dir,
    })
}

/// Opens `path` read-write, creating it if it does not exist. Returns
/// the path of the file created by this call, if one was: `path` itself,
/// or the target of a dangling symbolic link (the link stays).
fn open_or_create(path: &Path) -> io::Result<(File, Option<PathBuf>)> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).mode(0o644);
    for _ in 0..8 {
        match opts.clone().create_new(true).open(path) {
            Ok(f) => return Ok((f, Some(path.to_path_buf()))),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        match opts.open(path) {
            Ok(f) => return Ok((f, None)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Exists but cannot be opened without creating: a dangling
        // symbolic link. qemu creates its target, and so do we.
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            let f = opts.clone().create(true).open(path)?;
            let created = std::fs::canonicalize(path).ok();
            return Ok((f, created));
        }
        // Removed between the two opens: try again.
    }
    Err(io::Error::from_raw_os_error(libc::EAGAIN))
}

/// A device's size: its end as `lseek` finds it (qemu's `raw_getlength`).
fn device_size(file: &File) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let mut f = file;
    let size = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(0))?;
    Ok(size)
}

/// qemu's create on a device ends by zeroing its first sector (so that
/// no old image header is found there), at most the device's size.
fn zero_first_sector(file: &File, size: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let n = size.min(SECTOR) as usize;
    if n == 0 {
        return Ok(());
    }
    file.write_all_at(&[0u8; SECTOR as usize][..n], 0)
}

/// The size of the block or character device at `path` (following
/// links), or `None` when `path` is not a device that can be opened.
pub fn device_size_at(path: &Path) -> Option<u64> {
    let m = std::fs::metadata(path).ok()?;
    let t = m.file_type();
    if !(t.is_block_device() || t.is_char_device()) {
        return None;
    }
    device_size(&File::open(path).ok()?).ok()
}
