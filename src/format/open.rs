//! The one opener: an image by name and format (detected when not
//! given), and chains of backing images. Every file an image names
//! (backing file, data file, vmdk extents) goes through [`gate`].

use super::Format;
use crate::error::{Error, Result};
use crate::image::{Backing, Chain, Layer};
use std::collections::HashSet;

/// The deepest chain diskforge opens. qemu has no fixed limit, but its
/// time grows with the square of the depth (`qemu-img map` of a
/// 1000-deep qcow2 chain: 41 s; 10 000 deep: still running after 2 min);
/// a bound keeps a hostile chain from exhausting file descriptors,
/// memory and time.
pub const MAX_CHAIN_DEPTH: usize = 1024;

pub use crate::image::gate::{Named, gate};

/// Opens one image (no backing layers) as `format`, or detected. Unless
/// `share` (`-U`), an image that another process holds for writing is
/// refused as qemu-img refuses it (see [`crate::lock`]).
pub fn open(filename: &str, format: Option<Format>, share: bool) -> Result<Layer> {
    // The info reader makes qemu's open-time checks, with its messages.
    let info = crate::format::collect::collect(filename, format, share)?;
    let fmt = Format::from_name(&info.format).unwrap_or(Format::Raw);
    let backing = info.backing_filename.as_ref().map(|b| Backing {
        name: b.clone(),
        full_name: info
            .full_backing_filename
            .clone()
            .unwrap_or_else(|| crate::image::chain::full_backing_filename(filename, b)),
        format: info.backing_filename_format.clone(),
    });
    match fmt {
        Format::Raw => super::raw::map::open(filename),
        Format::Qcow2 => super::qcow2::map::open(filename, &info, backing),
        Format::Qcow => super::qcow::map::open(filename, backing),
        Format::Vmdk => super::vmdk::map::open(filename, backing),
        Format::Vdi => super::vdi::map::open(filename),
        Format::Vpc => super::vpc::map::open(filename),
    }
    .map_err(|e| e.opening(filename))
}

/// Opens an image and its backing chain, top first: at most
/// [`MAX_CHAIN_DEPTH`] layers, and no file twice (by device and inode).
pub fn open_chain(filename: &str, format: Option<Format>, share: bool) -> Result<Chain> {
    let top = open(filename, format, share)?;
    let mut seen = HashSet::new();
    seen.insert(top.files()[0].identity());
    let mut layers = vec![top];
    loop {
        let Some(b) = layers.last().and_then(|l| l.backing()).cloned() else {
            return Ok(Chain { layers });
        };
        // qemu: the backing image's own reason, without the
        // `Could not open 'BACKING': ` of a top-level open, under one
        // "Could not open backing file: " per level below the top.
        let levels = "Could not open backing file: ".repeat(layers.len());
        let in_backing = |e: Error| match e {
            Error::Failed(_) | Error::Image(_) => Error::Failed(format!(
                "Could not open '{filename}': {levels}{}",
                e.reason()
            )),
            other => other,
        };
        if layers.len() >= MAX_CHAIN_DEPTH {
            return Err(Error::Failed(format!(
                "Could not open '{filename}': Backing chain longer than {MAX_CHAIN_DEPTH} images (the most diskforge opens)"
            )));
        }
        gate(Named::Backing, &b.full_name)?;
        let fmt = match &b.format {
            Some(f) => Some(Format::from_name(f).ok_or_else(|| {
                in_backing(Error::image(&b.full_name, format!("Unknown driver '{f}'")))
            })?),
            None => None,
        };
        let layer = open(&b.full_name, fmt, share).map_err(in_backing)?;
        if !seen.insert(layer.files()[0].identity()) {
            return Err(Error::Failed(format!(
                "Backing file '{}' creates an infinite loop.",
                b.full_name
            )));
        }
        layers.push(layer);
    }
}
