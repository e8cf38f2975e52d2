//! The format-neutral half of `info`: open checks, detection, the `file`
//! child nodes, allocation, backing file names and the backing chain.

use super::probe::{self, Detected};
use crate::error::{Error, Result};
use crate::format::{self, Format};
use crate::image::HostFile;
use crate::image::chain::full_backing_filename;
use crate::name::escape;
use crate::qapi::bytes::path_of;
use crate::qapi::{ChildInfo, FormatSpecific, ImageInfo};
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;

/// The format of `filename` from its content.
pub fn detect_file(filename: &str) -> Result<Format> {
    let head = probe::read_head(&HostFile::open(filename)?)?;
    match probe::detect(&head) {
        Detected::Known(f) => Ok(f),
        Detected::Unsupported(name) => Err(Error::image(
            filename,
            format!("image format '{name}' is not supported by diskforge"),
        )),
    }
}

/// The description of the `file` protocol node for `filename`: its
/// length rounded up to a sector (as qemu's block layer sees it) and its
/// allocated bytes.
pub fn file_node(filename: &str) -> Result<ImageInfo> {
    let file = HostFile::open(filename)?;
    Ok(ImageInfo {
        filename: filename.to_string(),
        format: if file.is_regular() {
            "file"
        } else {
            "host_device"
        }
        .to_string(),
        virtual_size: file.sector_len(),
        actual_size: Some(file.allocated()),
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
fn lock_for_reading(
    image: &str,
    filename: &str,
    fmt: Format,
    share: bool,
) -> Result<Option<HostFile>> {
    if share || fmt == Format::Raw {
        return Ok(None);
    }
    let file = HostFile::open(filename)?;
    if let Some(f) = file.as_file() {
        crate::lock::acquire_if_supported(f, crate::lock::Access::FORMAT_READ)
            .map_err(|e| Error::image(image, e.message(filename)))?;
    }
    Ok(Some(file))
}

/// Everything `qemu-img info` shows about one image: detection (unless
/// `format` forces one), the format's reader, then the shared fields.
/// Unless `share` (`-U`), the image and the files it names are locked as
/// qemu-img locks them while they are read.
pub fn collect(filename: &str, format: Option<Format>, share: bool) -> Result<ImageInfo> {
    let fmt = match format {
        Some(f) => {
            HostFile::open(filename)?;
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
        info.actual_size = Some(HostFile::open(filename)?.allocated());
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
                    Error::image(&next, format!("Unknown driver '{}'", escape(&f)))
                })?),
                None => None,
            };
        name = next;
    }
}
