//! What a format writer needs to create one image: the file name, size,
//! options and the files the creation made (removed again on failure).

use crate::error::{Error, Result};
use crate::format::kind::Format;
use crate::image::target::{self, TargetFile};
use crate::lock::Access;
use crate::name::{escape, escape_path};
use crate::options::Options;
use std::cell::RefCell;
use std::fs::File;
use std::path::{Path, PathBuf};

/// A preallocation mode (`-o preallocation=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prealloc {
    Off,
    Metadata,
    Falloc,
    Full,
}

impl Prealloc {
    fn from_name(name: &str) -> Option<Prealloc> {
        Some(match name {
            "off" => Prealloc::Off,
            "metadata" => Prealloc::Metadata,
            "falloc" => Prealloc::Falloc,
            "full" => Prealloc::Full,
            _ => return None,
        })
    }
}

/// Everything a format's writer needs to create one image.
pub struct CreateContext<'a> {
    /// The image file name as the user gave it (its bytes carried as
    /// [`crate::name`] describes; escape it for messages).
    pub filename: &'a str,
    /// The path `filename` names.
    path: PathBuf,
    /// The virtual size in bytes, as given (formats round it).
    pub size: u64,
    /// The format being created.
    pub format: Format,
    /// The parsed `-o` options (with `-b`/`-F` folded in).
    pub options: &'a Options,
    /// `-q`: no output, no progress bar.
    pub quiet: bool,
    /// `--reproducible`: no random or clock-derived fields.
    pub reproducible: bool,
    created: RefCell<Vec<Held>>,
}

/// A file the creation opened: a descriptor kept open (so its locks
/// last until the end) and what to undo on failure.
struct Held {
    name: String,
    file: File,
    pending: Option<crate::cleanup::Pending>,
    new_entry_dir: Option<PathBuf>,
}

impl<'a> CreateContext<'a> {
    /// A context for creating `filename`.
    pub fn new(
        filename: &'a str,
        format: Format,
        size: u64,
        options: &'a Options,
        quiet: bool,
        reproducible: bool,
    ) -> Self {
        CreateContext {
            filename,
            path: crate::name::path_of(filename),
            format,
            size,
            options,
            quiet,
            reproducible,
            created: RefCell::new(Vec::new()),
        }
    }

    /// The image's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A usage error about this image (exit 2).
    pub fn usage(&self, message: impl std::fmt::Display) -> Error {
        Error::usage_for(self.filename, message)
    }

    /// A failure about this image (exit 1).
    pub fn failed(&self, message: impl std::fmt::Display) -> Error {
        Error::failed_for(self.filename, message)
    }

    /// Opens (creating it if needed) a file that belongs to the new image,
    /// locked as qemu locks it, and emptied unless it is a device (see
    /// [`target`]). A file this run creates is removed again if the
    /// creation fails or is interrupted; the file stays open and locked
    /// until the creation ends.
    pub fn create_file(&self, path: &Path) -> Result<TargetFile> {
        let name = escape_path(path);
        let opened = target::open(path, &self.format_locks(path)).map_err(|e| match e {
            target::OpenError::Open(e) => Error::io(
                format!("{}: Could not create '{name}'", escape(self.filename)),
                e,
            ),
            target::OpenError::Lock(e) => self.failed(e.message(&name)),
            target::OpenError::ReadOnlyDevice => self.failed(target::OpenError::READ_ONLY_DEVICE),
            target::OpenError::Prepare(e) => Error::io(
                format!("{}: Could not resize file", escape(self.filename)),
                e,
            ),
        })?;
        let file = opened.file;
        let keep = file.try_clone_file().map_err(|e| {
            Error::io(
                format!("{}: Could not open '{name}'", escape(self.filename)),
                e,
            )
        })?;
        self.created.borrow_mut().push(Held {
            name,
            file: keep,
            pending: opened.pending,
            new_entry_dir: opened.new_entry_dir,
        });
        if !file.is_device() {
            set_file_attributes(
                &file,
                self.flag("nocow", false),
                self.options
                    .get_number("extent_size_hint")
                    .unwrap_or(DEFAULT_EXTENT_SIZE_HINT),
            );
        }
        Ok(file)
    }

    /// The locks qemu-img holds on a file while it creates an image of
    /// this format: every create starts as the file driver's own
    /// (`raw_co_create`); the formats that reopen the new file to write
    /// their metadata then hold what that open takes (for qcow2's image
    /// file, no one else may write it; its external data file and vmdk's
    /// files are opened sharing writes).
    fn format_locks(&self, path: &Path) -> Vec<Access> {
        use crate::lock::Perm;
        let reopen = match self.format {
            Format::Raw => return vec![Access::CREATE],
            Format::Qcow2 if path == self.path() => Access::FORMAT_WRITE,
            Format::Qcow2 => Access {
                perm: Perm::CONSISTENT_READ.union(Perm::WRITE).union(Perm::RESIZE),
                shared: Perm::RESIZE.complement(),
            },
            Format::Vmdk => Access {
                perm: Perm::CONSISTENT_READ.union(Perm::WRITE).union(Perm::RESIZE),
                shared: Perm::ALL,
            },
            Format::Vdi | Format::Vpc | Format::Qcow => Access {
                perm: Perm::WRITE.union(Perm::RESIZE),
                shared: Perm::ALL,
            },
        };
        vec![Access::CREATE, Access::CREATE.union(reopen)]
    }

    /// After success: everything written reaches stable storage (each
    /// file, then each directory that got a new entry) before `create`
    /// reports success; then the new files are no longer removed.
    pub(crate) fn finish(&self) -> Result<()> {
        let held = std::mem::take(&mut *self.created.borrow_mut());
        let mut dirs: Vec<&Path> = Vec::new();
        let mut result = Ok(());
        for h in &held {
            // EINVAL: a special file that cannot be synced (/dev/null).
            if let Err(e) = h.file.sync_all()
                && e.raw_os_error() != Some(libc::EINVAL)
            {
                result = Err(Error::io(
                    format!("{}: Could not flush '{}'", self.filename, h.name),
                    e,
                ));
                break;
            }
            if let Some(d) = &h.new_entry_dir
                && !dirs.contains(&d.as_path())
            {
                dirs.push(d);
            }
        }
        if result.is_ok() {
            for d in dirs {
                // Not every file system can sync a directory: only a
                // failure of the sync itself counts.
                if let Ok(f) = File::open(d)
                    && let Err(e) = f.sync_all()
                    && e.raw_os_error() != Some(libc::EINVAL)
                {
                    result = Err(Error::io(
                        format!("{}: Could not flush '{}'", self.filename, d.display()),
                        e,
                    ));
                    break;
                }
            }
        }
        for h in held.into_iter().rev() {
            if let Some(p) = h.pending {
                if result.is_ok() {
                    p.keep();
                } else {
                    p.remove();
                }
            }
        }
        result
    }

    /// After a failure: removes the files this creation made (never a
    /// device, a link or a file that existed before). True if it removed
    /// any.
    pub(crate) fn remove_created(&self) -> bool {
        let held = std::mem::take(&mut *self.created.borrow_mut());
        let mut removed = false;
        for h in held.into_iter().rev() {
            if let Some(p) = h.pending {
                p.remove();
                removed = true;
            }
        }
        removed
    }

    /// The backing file name, if any (`-b` or `backing_file=`).
    pub fn backing_file(&self) -> Option<&str> {
        self.options.get_str("backing_file")
    }

    /// The backing format, if any (`-F` or `backing_fmt=`).
    pub fn backing_fmt(&self) -> Option<&str> {
        self.options.get_str("backing_fmt")
    }

    /// The `preallocation` option, checked against the modes `allowed`.
    /// qemu's messages: an unknown word is refused by qcow2's own option
    /// parser ("does not accept value") or by the file protocol's
    /// ("invalid parameter value"); a known mode the format lacks is an
    /// "Unsupported preallocation mode".
    pub fn preallocation(&self, allowed: &[Prealloc]) -> Result<Prealloc> {
        let Some(text) = self.options.get_str("preallocation") else {
            return Ok(Prealloc::Off);
        };
        match Prealloc::from_name(text) {
            None if self.format == Format::Qcow2 => Err(self.usage(format!(
                "Parameter 'preallocation' does not accept value '{text}'"
            ))),
            None => Err(self.usage(format!("invalid parameter value: {text}"))),
            Some(p) if !allowed.contains(&p) => {
                Err(self.usage(format!("Unsupported preallocation mode: {text}")))
            }
            Some(p) => Ok(p),
        }
    }

    /// A bool option with its default.
    pub fn flag(&self, name: &str, default: bool) -> bool {
        self.options.get_bool(name).unwrap_or(default)
    }
}

/// qemu's file driver asks for a 1 MiB extent size hint unless told
/// otherwise (`extent_size_hint=0` disables it).
const DEFAULT_EXTENT_SIZE_HINT: u64 = 1 << 20;

/// Applies the file protocol's `nocow` (btrfs: `FS_NOCOW_FL`) and
/// `extent_size_hint` (XFS: `fsx_extsize`) to a new, empty file, as qemu's
/// file driver does. Both are optimisations: like qemu, failures (file
/// systems without these attributes, such as ext4) are ignored.
fn set_file_attributes(file: &File, nocow: bool, extent_size_hint: u64) {
    use std::os::fd::AsRawFd;
    /// `_IOR('f', 1, long)` and `_IOW('f', 2, long)` from linux/fs.h.
    const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;
    const FS_IOC_SETFLAGS: libc::c_ulong = 0x4008_6602;
    /// "Do not cow file" (linux/fs.h).
    const FS_NOCOW_FL: libc::c_long = 0x0080_0000;
    /// `_IOR('X', 31, struct fsxattr)` and `_IOW('X', 32, struct fsxattr)`.
    const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801c_581f;
    const FS_IOC_FSSETXATTR: libc::c_ulong = 0x401c_5820;
    /// "extent size allocator hint" flag of `fsx_xflags`.
    const FS_XFLAG_EXTSIZE: u32 = 0x0000_0800;
    /// `struct fsxattr` from linux/fs.h.
    #[repr(C)]
    #[derive(Default)]
    struct FsXattr {
        fsx_xflags: u32,
        fsx_extsize: u32,
        fsx_nextents: u32,
        fsx_projid: u32,
        fsx_cowextsize: u32,
        fsx_pad: [u8; 8],
    }
    let fd = file.as_raw_fd();
    if nocow {
        let mut attr: libc::c_long = 0;
        // SAFETY: the ioctls read/write one `long` through a valid pointer
        // on a valid descriptor; errors are returned, not signalled.
        unsafe {
            if libc::ioctl(fd, FS_IOC_GETFLAGS as _, &mut attr) == 0 {
                attr |= FS_NOCOW_FL;
                libc::ioctl(fd, FS_IOC_SETFLAGS as _, &attr);
            }
        }
    }
    if let Ok(hint) = u32::try_from(extent_size_hint)
        && hint > 0
    {
        let mut attr = FsXattr::default();
        // SAFETY: as above, with a `struct fsxattr` of the kernel's layout.
        unsafe {
            if libc::ioctl(fd, FS_IOC_FSGETXATTR as _, &mut attr) == 0 {
                attr.fsx_xflags |= FS_XFLAG_EXTSIZE;
                attr.fsx_extsize = hint;
                libc::ioctl(fd, FS_IOC_FSSETXATTR as _, &attr);
            }
        }
    }
}

/// Resolves a backing file name relative to the new image's directory,
/// as qemu does (both names carry their bytes as [`crate::name`] says).
pub fn resolve_backing_path(image: &str, backing: &str) -> PathBuf {
    crate::name::path_of(&crate::image::chain::full_backing_filename(image, backing))
}
