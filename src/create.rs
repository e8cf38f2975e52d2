//! `create`: the format-neutral part of `qemu-img create` — option and
//! size handling, the backing file, the `Formatting` line, and cleaning
//! up after a failure — before handing over to the format's writer.

use crate::cli::CreateArgs;
use crate::error::{Error, Result};
use crate::format::{self, Format};
use crate::lock::Access;
use crate::name::{escape, escape_path};
use crate::options::{Options, check_option_list, is_help_request};
use crate::size::parse_image_size;
use std::cell::RefCell;
use std::fs::File;
use std::path::{Path, PathBuf};

pub mod target;

pub use target::TargetFile;

/// Options whose values diskforge refuses: it does not write encrypted
/// images.
const ENCRYPTION_OPTIONS: &[&str] = &[
    "encryption",
    "encrypt.format",
    "encrypt.key-secret",
    "encrypt.cipher-alg",
    "encrypt.cipher-mode",
    "encrypt.ivgen-alg",
    "encrypt.ivgen-hash-alg",
    "encrypt.hash-alg",
    "encrypt.iter-time",
];

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
    fn finish(&self) -> Result<()> {
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
    fn remove_created(&self) -> bool {
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
    let b = crate::name::path_of(backing);
    if b.is_absolute() {
        return b;
    }
    match crate::name::path_of(image).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(b),
        _ => b.to_path_buf(),
    }
}

/// qemu's format drivers that cannot create images: `create -f` names
/// them as qemu-img does ("Format driver 'X' does not support image
/// creation") rather than as unknown.
const READ_ONLY_DRIVERS: &[&str] = &[
    "blkdebug",
    "blklogwrites",
    "blkverify",
    "bochs",
    "cloop",
    "compress",
    "copy-before-write",
    "copy-on-read",
    "dmg",
    "null-aio",
    "null-co",
    "preallocate",
    "quorum",
    "replication",
    "snapshot-access",
    "throttle",
    "vvfat",
];

/// The format `-f` names, or qemu-img's error for it.
fn create_format(name: &str) -> std::result::Result<Format, String> {
    Format::from_name(name).ok_or_else(|| {
        if READ_ONLY_DRIVERS.contains(&name) {
            format!(
                "Format driver '{}' does not support image creation",
                escape(name)
            )
        } else {
            format!("Unknown file format '{}'", escape(name))
        }
    })
}

/// Runs `diskforge create`, checking its arguments in qemu-img's order:
/// the `-o` lists, `-o help` (where the format is checked first, with no
/// file name in the message), the file name, the size, then the format.
pub fn run(args: &CreateArgs) -> Result<()> {
    let filename = args.filename.as_deref().map(crate::name::from_os);
    let filename = filename.as_deref();
    for arg in &args.options {
        check_option_list(arg).map_err(|e| Error::Usage(e.to_string()))?;
    }
    if is_help_request(&args.options) {
        let format = create_format(&args.format).map_err(Error::Usage)?;
        let opts = Options::new(format.create_options(), filename.is_some());
        let text = match filename {
            Some(_) => opts.help_text("Supported options:", false),
            None => opts.help_text(&format!("Supported {} options:", format.name()), true),
        };
        crate::out!("{text}");
        return Ok(());
    }
    let filename = filename.ok_or_else(|| Error::Usage("Expecting image file name".to_string()))?;
    if let Some(extra) = args.object.first() {
        return Err(Error::Usage(format!(
            "--object '{}' is not supported: diskforge creates no encrypted images and needs no objects",
            escape(extra)
        )));
    }
    let positional_size = match &args.size {
        Some(text) => Some(parse_image_size(text).map_err(Error::Usage)?),
        None => None,
    };

    let format = create_format(&args.format).map_err(|e| Error::usage_for(filename, e))?;
    let mut opts = Options::new(format.create_options(), true);
    opts.parse(&args.options)
        .map_err(|e| Error::usage_for(filename, e))?;
    if let Some(name) = opts.given_names().find(|n| ENCRYPTION_OPTIONS.contains(n)) {
        return Err(Error::usage_for(
            filename,
            format!("option '{name}' is not supported: diskforge does not create encrypted images"),
        ));
    }
    if let Some(size) = positional_size {
        if opts.is_set("size") {
            return Err(Error::usage_for(
                filename,
                "The image size must be specified only once",
            ));
        }
        opts.set_number("size", size)
            .map_err(|e| Error::usage_for(filename, e))?;
    }
    for (name, value, what) in [
        ("backing_file", &args.backing, "Backing file"),
        ("backing_fmt", &args.backing_format, "Backing file format"),
    ] {
        if let Some(v) = value {
            opts.set(name, v).map_err(|_| {
                Error::usage_for(
                    filename,
                    format!("{what} not supported for file format '{}'", format.name()),
                )
            })?;
        }
    }

    check_backing(filename, format, &mut opts, args.unsafe_backing)?;

    let size = opts
        .get_number("size")
        .ok_or_else(|| Error::usage_for(filename, "Image creation needs a size parameter"))?;
    if size > crate::size::MAX_IMAGE_SIZE {
        return Err(Error::usage_for(
            filename,
            format!("Value '{size}' is out of range for parameter 'size'"),
        ));
    }

    if !args.quiet {
        // The name's own bytes, as qemu-img prints them.
        let line = format!(
            "Formatting '{}', fmt={} {}\n",
            filename,
            format.name(),
            opts.formatting_text()
        );
        let mut stdout = std::io::stdout().lock();
        let _ = std::io::Write::write_all(&mut stdout, &crate::name::bytes_of(&line));
        let _ = std::io::Write::flush(&mut stdout);
    }

    let ctx = CreateContext::new(filename, format, size, &opts, args.quiet, args.reproducible);
    if let Some(device_size) = target::device_size_at(ctx.path()) {
        check_device(&ctx, device_size)?;
    }
    match format.create(&ctx).and_then(|()| ctx.finish()) {
        Ok(()) => Ok(()),
        Err(e) => {
            let removed = ctx.remove_created();
            if let Some(e) = device_error(&ctx, &e) {
                Err(e)
            } else if e.is_no_space() && removed {
                Err(Error::Failed(format!(
                    "{e} (the partial image was removed)"
                )))
            } else {
                Err(e)
            }
        }
    }
}

/// Creates the image `ctx` describes as `create` does, then runs `fill`
/// (convert writes the guest data there) before every file is flushed
/// and kept; on any failure the files this run created are removed.
pub fn create_then(ctx: &CreateContext, fill: impl FnOnce() -> Result<()>) -> Result<()> {
    match ctx
        .format
        .create(ctx)
        .and_then(|()| fill())
        .and_then(|()| ctx.finish())
    {
        Ok(()) => Ok(()),
        Err(e) => {
            ctx.remove_created();
            Err(e)
        }
    }
}

/// qemu's hint line after a backing image that does not open.
const BACKING_HINT: &str = "Could not open backing image.";

/// qemu-img on a device: the raw format (qemu's generic create for
/// protocols that cannot create) refuses any preallocation and a size
/// beyond the device's before it writes anything; qcow2 writes its
/// metadata first and then fails to preallocate the device, which
/// diskforge refuses before writing anything.
fn check_device(ctx: &CreateContext, device_size: u64) -> Result<()> {
    let mode = ctx.options.get_str("preallocation").unwrap_or("off");
    if ctx.format == Format::Raw
        && mode == "off"
        && crate::format::raw::round_to_sector(ctx.size) > device_size
    {
        return Err(ctx.failed(target::CannotGrow));
    }
    match (ctx.format, mode) {
        (_, "off") => Ok(()),
        (Format::Raw, _) => Err(ctx.failed(format!("Unsupported preallocation mode '{mode}'"))),
        (Format::Qcow2, "falloc" | "full") => Err(ctx.failed(format!(
            "Could not resize image: Failed to resize underlying file: Preallocation mode '{mode}' unsupported for this non-regular file"
        ))),
        _ => Ok(()),
    }
}

/// A write past the end of a device, as qemu words it.
fn device_error(ctx: &CreateContext, e: &Error) -> Option<Error> {
    let Error::Io { source, .. } = e else {
        return None;
    };
    source
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<target::CannotGrow>())
        .map(|g| ctx.failed(g))
}

/// qemu-img's backing file rules: the format must support one, a backing
/// format is required, and unless `-u` the backing image must open (with
/// the `-F` driver, or detected); its size becomes the default size.
/// Errors as qemu-img words them: why the backing image did not open,
/// then the line "Could not open backing image.".
fn check_backing(
    filename: &str,
    format: Format,
    opts: &mut Options,
    unsafe_backing: bool,
) -> Result<()> {
    let backing = opts.get_str("backing_file").map(str::to_string);
    let backing_fmt = opts.get_str("backing_fmt").map(str::to_string);
    let Some(backing) = backing else {
        if backing_fmt.is_some() {
            return Err(Error::usage_for(
                filename,
                "Backing format cannot be used without backing file",
            ));
        }
        return Ok(());
    };
    if !format.supports_backing() {
        return Err(Error::usage_for(
            filename,
            format!(
                "Backing file not supported for file format '{}'",
                format.name()
            ),
        ));
    }
    if backing == filename {
        return Err(Error::usage_for(
            filename,
            "Error: Trying to create an image with the same filename as the backing file",
        ));
    }
    if backing.is_empty() {
        return Err(Error::usage_for(
            filename,
            "Expected backing file name, got empty string",
        ));
    }
    if unsafe_backing {
        if backing_fmt.is_none() {
            return Err(Error::usage_for(
                filename,
                "Backing file specified without backing format",
            ));
        }
        return Ok(());
    }
    let path = resolve_backing_path(filename, &backing);
    let not_opened = |why: String| Error::failed_for(filename, format!("{why}\n{BACKING_HINT}"));
    let named = match &backing_fmt {
        Some(name) => Some(
            Format::from_name(name)
                .ok_or_else(|| not_opened(format!("Unknown driver '{}'", escape(name))))?,
        ),
        None => None,
    };
    let detected = format::probe(&path).map_err(|e| {
        not_opened(match e {
            Error::Io { source, .. } => format!(
                "Could not open '{}': {}",
                escape_path(&path),
                crate::error::describe_io(&source)
            ),
            other => strip_path_prefix(&other, &path),
        })
    })?;
    let backing_format = named.unwrap_or(detected);
    let size = format::virtual_size(&path, backing_format)
        .map_err(|e| not_opened(strip_path_prefix(&e, &path)))?;
    if named.is_none() {
        return Err(Error::usage_for(
            filename,
            format!(
                "Backing file specified without backing format\nDetected format of {}.",
                detected.name()
            ),
        ));
    }
    if !opts.is_set("size") {
        opts.set_number("size", size)
            .map_err(|e| Error::usage_for(filename, e))?;
    }
    Ok(())
}

/// A reader's error without the `PATH: ` prefix it starts with.
fn strip_path_prefix(e: &Error, path: &Path) -> String {
    match e {
        Error::Io { source, .. } => crate::error::describe_io(source),
        other => {
            let s = other.to_string();
            let prefix = format!("{}: ", escape_path(path));
            s.strip_prefix(&prefix).map(str::to_string).unwrap_or(s)
        }
    }
}
