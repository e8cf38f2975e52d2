//! Reading a raw image for `info`: its virtual size is the file's length
//! as qemu's block layer sees it.

use crate::error::Result;
use crate::image::HostFile;
use crate::qapi::ImageInfo;
use std::path::Path;

pub use super::round_to_sector;

/// `info` for a raw image: the virtual size is the file's length as
/// qemu's block layer sees it (rounded up to a whole sector).
pub fn inspect(path: &Path) -> Result<ImageInfo> {
    let f = HostFile::open_path(path)?;
    Ok(ImageInfo {
        format: "raw".to_string(),
        virtual_size: f.sector_len(),
        ..ImageInfo::default()
    })
}
