//! `create`: the format-neutral part of `qemu-img create` — option and
//! size handling, the backing file, the `Formatting` line, and cleaning
//! up after a failure — before handing over to the format's writer.

use crate::cli::CreateArgs;
use crate::error::{Error, Result};
use crate::format::create_ctx::{CreateContext, resolve_backing_path};
use crate::format::{self, Format};
use crate::image::target;
use crate::name::escape;
use crate::options::{Options, check_option_list, is_help_request};
use crate::size::parse_image_size;

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
        let opts = Options::new(format::create_options(format), filename.is_some());
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
    let mut opts = Options::new(format::create_options(format), true);
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
    match format::create(format, &ctx).and_then(|()| ctx.finish()) {
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
    match format::create(ctx.format, ctx)
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
    let detected = format::probe(&path).map_err(|e| not_opened(e.reason()))?;
    let backing_format = named.unwrap_or(detected);
    let size = format::virtual_size(&path, backing_format).map_err(|e| not_opened(e.reason()))?;
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
