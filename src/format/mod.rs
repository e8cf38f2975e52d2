//! The image formats: one module per format, and the format-neutral
//! pieces that pick between them (names, option lists, detection).

pub mod check;
pub mod collect;
pub mod create_ctx;
pub mod kind;
pub mod open;
pub mod probe;
pub mod qcow;
pub mod qcow2;
pub mod raw;
pub mod vdi;
pub mod vmdk;
pub mod vpc;
pub mod writer;

use crate::error::Result;
use crate::format::create_ctx::CreateContext;
use crate::options::OptDesc;
pub use kind::Format;
pub use probe::probe;
use std::path::Path;

/// The format's own creation options, in qemu's print order.
pub fn create_options(format: Format) -> &'static [OptDesc] {
    match format {
        Format::Raw => raw::CREATE_OPTIONS,
        Format::Qcow2 => qcow2::CREATE_OPTIONS,
        Format::Qcow => qcow::CREATE_OPTIONS,
        Format::Vmdk => vmdk::CREATE_OPTIONS,
        Format::Vdi => vdi::CREATE_OPTIONS,
        Format::Vpc => vpc::CREATE_OPTIONS,
    }
}

/// Writes a new image as described by `ctx`.
pub fn create(format: Format, ctx: &CreateContext) -> Result<()> {
    match format {
        Format::Raw => raw::create(ctx),
        Format::Qcow2 => qcow2::create(ctx),
        Format::Qcow => qcow::create(ctx),
        Format::Vmdk => vmdk::create(ctx),
        Format::Vdi => vdi::create(ctx),
        Format::Vpc => vpc::create(ctx),
    }
}

/// What `info` shows about the image at `path` read as `format` (the
/// format-level fields; see [`crate::format::collect`] for the rest).
pub fn inspect(path: &Path, format: Format) -> Result<crate::qapi::ImageInfo> {
    match format {
        Format::Raw => raw::inspect(path),
        Format::Qcow2 => qcow2::inspect::inspect(path),
        Format::Qcow => qcow::inspect(path),
        Format::Vmdk => vmdk::inspect(path),
        Format::Vdi => vdi::inspect(path),
        Format::Vpc => vpc::inspect(path),
    }
}

/// The virtual size of the image at `path` read as `format`: what `info`
/// reports (each format computes it in one place, which its read path's
/// driver uses too).
pub fn virtual_size(path: &Path, format: Format) -> Result<u64> {
    inspect(path, format).map(|i| i.virtual_size)
}
