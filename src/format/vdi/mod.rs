//! VDI: VirtualBox's disk image format.

use crate::create::CreateContext;
use crate::error::Result;
use crate::options::{OptDesc, OptType, SIZE_OPTION};
use std::path::Path;

/// The signature at offset 0x40 (little-endian u32).
pub const VDI_SIGNATURE: u32 = 0xbeda_107f;

/// vdi's creation options, in qemu's print order.
pub const CREATE_OPTIONS: &[OptDesc] = &[
    SIZE_OPTION,
    OptDesc::new("static", OptType::Bool, "VDI static (pre-allocated) image").with_default("off"),
];

/// True when `head` carries the VDI signature.
pub fn is_vdi(head: &[u8]) -> bool {
    head.len() >= 0x44 && head[0x40..0x44] == VDI_SIGNATURE.to_le_bytes()
}

pub fn create(ctx: &CreateContext) -> Result<()> {
    Err(ctx.failed("creating vdi images is not implemented yet"))
}

/// The virtual size: `disk_size` (LE u64 at 0x170).
pub fn virtual_size(path: &Path) -> Result<u64> {
    super::read_le_u64_at(path, 0x170)
}

/// TEMPORARY stub so that `format::inspect` compiles before the vdi
/// reader is merged; the vdi helper's `inspect` replaces it.
pub fn inspect(_path: &Path) -> Result<crate::info::ImageInfo> {
    Err(crate::error::Error::Failed(
        "reading vdi images is not implemented yet".to_string(),
    ))
}
