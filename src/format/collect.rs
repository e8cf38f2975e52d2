//! The format-neutral half of `info`: open checks, detection, the `file`
//! child nodes, allocation, backing file names and the backing chain.

use super::probe::{self, Detected};
use crate::error::{Error, Result, describe_io};
use crate::format::raw::inspect::{file_length, round_to_sector};
use crate::format::{self, Format};
use crate::image::chain::full_backing_filename;
use crate::name::escape;
use crate::qapi::bytes::path_of;
use crate::qapi::{ChildInfo, FormatSpecific, ImageInfo};
use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;

/// qemu's message when a file cannot be opened.
fn open_failed(filename: &str, why: impl std::fmt::Display) -> Error {
    Error::Failed(format!("Could not open '{}': {why}", escape(filename)))
}

/// Opens `filename` as qemu's `file` driver would, with its errors.
fn open_file(filename: &str) -> Result<(File, std::fs::Metadata)> {
    let path = &path_of(filename);
    // A FIFO or socket would block the open (qemu-img hangs on a FIFO).
    if let Ok(m) = std::fs::metadata(path)
        && !is_openable(&m)
    {
        return Err(not_regular(filename));
    }
    let file = File::open(path).map_err(|e| {
        open_failed(
            filename,
            format!("Could not open '{}': {}", escape(filename), describe_io(&e)),
        )
    })?;
    let meta = file
        .metadata()
        .map_err(|e| open_failed(filename, describe_io(&e)))?;
    if !is_openable(&meta) {
        return Err(not_regular(filename));
    }
    Ok((file, meta))
}

/// Regular files and devices can be read as images; directories, FIFOs
/// and sockets cannot.
fn is_openable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    t.is_file() || t.is_block_device() || t.is_char_device()
}

fn not_regular(filename: &str) -> Error {
    open_failed(
        filename,
        format!(
            "'file' driver requires '{}' to be a regular file",
            escape(filename)
        ),
    )
}

/// The format of `filename` from its content.
pub fn detect_file(filename: &str) -> Result<Format> {
    let (mut file, _) = open_file(filename)?;
    let mut head = vec![0u8; probe::PROBE_BYTES];
    let mut len = 0;
    while len < head.len() {
        match file.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(open_failed(filename, describe_io(&e))),
        }
    }
    match probe::detect(&head[..len]) {
        Detected::Known(f) => Ok(f),
        Detected::Unsupported(name) => Err(open_failed(
            filename,
            format!("image format '{name}' is not supported by diskforge"),
        )),
    }
}

/// The description of the `file` protocol node for `filename`: its
/// length rounded up to a sector (as qemu's block layer sees it) and its
/// allocated bytes.
pub fn file_node(filename: &str) -> Result<ImageInfo> {
    let (file, meta) = open_file(filename)?;
    let len = file_length(&file, &meta).map_err(|e| open_failed(filename, describe_io(&e)))?;
    Ok(ImageInfo {
        filename: filename.to_string(),
        format: if meta.is_file() {
            "file"
        } else {
            "host_device"
        }
        .to_string(),
        virtual_size: round_to_sector(len),
        actual_size: Some(meta.blocks().saturating_mul(512)),
        dirty_flag: Some(false),
        format_specific: Some(FormatSpecific::File),
        ..ImageInfo::default()
    })
}

/// The lock `qemu-img info` holds on a file while it reads it: the file
/// under a format (qcow2, vmdk and its extents...) may not be written or
/// resized by others meanwhile, so an image in use by a writer is
/// refused; a raw image, and anything with `-U` (`share`), takes no lock.
/// The lock lasts as long as the returned file stays open.
/// `image` names the image in the message (qemu reports a locked vmdk
/// extent as `Could not open 'IMAGE': ...` with the extent in the hint).
fn lock_for_reading(image: &str, filename: &str, fmt: Format, share: bool) -> Result<Option<File>> {
    if share || fmt == Format::Raw {
        return Ok(None);
    }
    let (file, _) = open_file(filename)?;
    crate::lock::acquire_if_supported(&file, crate::lock::Access::FORMAT_READ)
        .map_err(|e| open_failed(image, e.message(filename)))?;
    Ok(Some(file))
}

/// Everything `qemu-img info` shows about one image: detection (unless
/// `format` forces one), the format's reader, then the shared fields.
/// Unless `share` (`-U`), the image and the files it names are locked as
/// qemu-img locks them while they are read.
pub fn collect(filename: &str, format: Option<Format>, share: bool) -> Result<ImageInfo> {
    let fmt = match format {
        Some(f) => {
            open_file(filename)?;
            f
        }
        None => detect_file(filename)?,
    };
    let _lock = lock_for_reading(filename, filename, fmt, share)?;
    let path = &path_of(filename);
    let mut info = format::inspect(path, fmt).map_err(|e| e.opening(filename))?;
    info.filename = filename.to_string();
    if info.format.is_empty() {
        info.format = fmt.name().to_string();
    }
    if info.actual_size.is_none() {
        let (_, meta) = open_file(filename)?;
        info.actual_size = Some(meta.blocks().saturating_mul(512));
    }
    if info.dirty_flag.is_none() {
        info.dirty_flag = Some(false);
    }
    if let (Some(b), None) = (&info.backing_filename, &info.full_backing_filename) {
        info.full_backing_filename = Some(full_backing_filename(filename, b));
    }
    let extra = std::mem::take(&mut info.children);
    let mut children = Vec::with_capacity(extra.len() + 1);
    for c in extra.into_iter().rev() {
        if c.name == "file" {
            continue;
        }
        let _extent_lock = lock_for_reading(filename, &c.info.filename, fmt, share)?;
        let node = file_node(&c.info.filename)?;
        children.push(ChildInfo {
            name: c.name,
            info: node,
        });
    }
    children.push(ChildInfo {
        name: "file".to_string(),
        info: file_node(filename)?,
    });
    info.children = children;
    Ok(info)
}

/// `--backing-chain`: the image and every backing image below it, top
/// first. A backing file that cannot be opened is an error, as is a
/// chain that comes back to an image already listed.
pub fn backing_chain(
    filename: &str,
    format: Option<Format>,
    share: bool,
) -> Result<Vec<ImageInfo>> {
    let mut chain = Vec::new();
    let mut seen_names = HashSet::new();
    let mut seen_files = HashSet::new();
    let mut name = filename.to_string();
    let mut fmt = format;
    loop {
        let identity = std::fs::metadata(path_of(&name))
            .ok()
            .map(|m| (m.dev(), m.ino()));
        let looped =
            !seen_names.insert(name.clone()) || identity.is_some_and(|id| !seen_files.insert(id));
        if looped {
            return Err(Error::Failed(format!(
                "Backing file '{}' creates an infinite loop.",
                escape(&name)
            )));
        }
        let info = collect(&name, fmt, share)?;
        let next = info.backing_filename.as_ref().map(|b| {
            info.full_backing_filename
                .clone()
                .unwrap_or_else(|| full_backing_filename(&name, b))
        });
        let next_fmt = info.backing_filename_format.clone();
        chain.push(info);
        let Some(next) = next else {
            return Ok(chain);
        };
        fmt =
            match next_fmt {
                Some(f) => Some(Format::from_name(&f).ok_or_else(|| {
                    open_failed(&next, format!("Unknown driver '{}'", escape(&f)))
                })?),
                None => None,
            };
        name = next;
    }
}
