//! Picks the convert target's writer: each format's `writer.rs` fills a
//! freshly created (or, with `convert -n`, an existing) image in guest
//! order through [`ImageWriter`].

use crate::error::{Error, Result};
use crate::format::Format;
use crate::image::convert::ImageWriter;
use std::fs::File;

/// The target a writer fills.
pub struct Target<'a> {
    /// The image file, opened for writing (the format's header is already
    /// there unless the format is raw).
    pub file: File,
    /// The name as the user gave it (for messages).
    pub name: &'a str,
    /// The file reads as zeros where nothing was written (a new regular
    /// file, or `--target-is-zero`).
    pub zeroed: bool,
}

/// The writer for `format` into `target`.
pub fn open(format: Format, target: Target) -> Result<Box<dyn ImageWriter>> {
    match format {
        Format::Raw => Ok(Box::new(super::raw::writer::RawWriter::new(
            target.file,
            target.name,
            target.zeroed,
        ))),
        other => Err(Error::Failed(format!(
            "convert to '{}' is not implemented yet (this diskforge converts to: raw)",
            other.name()
        ))),
    }
}
