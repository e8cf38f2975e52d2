//! VMDK: VMware's sparse (`KDMV`) and descriptor-based formats.
//!
//! [`header`] holds the on-disk sparse extent header, [`descriptor`] the
//! text descriptor (both written by [`create`] and read by [`inspect`]).

pub mod check;
pub mod create;
pub mod descriptor;
pub mod header;
pub mod inspect;
pub mod map;

pub use create::create;
pub use inspect::inspect;

use crate::error::Result;
use crate::options::{OptDesc, OptType, SIZE_OPTION};
use std::path::Path;

/// `KDMV` at offset 0 of a sparse extent.
pub const VMDK4_MAGIC: &[u8; 4] = &header::MAGIC;

/// vmdk's creation options, in qemu's print order.
pub const CREATE_OPTIONS: &[OptDesc] = &[
    SIZE_OPTION,
    OptDesc::new(
        "adapter_type",
        OptType::Str,
        "Virtual adapter type, can be one of ide (default), lsilogic, buslogic or legacyESX",
    ),
    OptDesc::new("backing_file", OptType::Str, "File name of a base image"),
    OptDesc::new("backing_fmt", OptType::Str, "Must be 'vmdk' if present"),
    OptDesc::new("compat6", OptType::Bool, "VMDK version 6 image").with_default("off"),
    OptDesc::new("hwversion", OptType::Str, "VMDK hardware version").with_default("undefined"),
    OptDesc::new("toolsversion", OptType::Str, "VMware guest tools version"),
    OptDesc::new(
        "subformat",
        OptType::Str,
        "VMDK flat extent format, can be one of {monolithicSparse (default) | monolithicFlat | twoGbMaxExtentSparse | twoGbMaxExtentFlat | streamOptimized} ",
    ),
    OptDesc::new(
        "zeroed_grain",
        OptType::Bool,
        "Enable efficient zero writes using the zeroed-grain GTE feature",
    ),
];

/// True when `head` (the start of a file) is a vmdk image, as qemu's
/// `vmdk_probe` decides: a `KDMV` or `COWD` magic, or a text whose first
/// line other than comments and blank lines is `version=1`, `2` or `3`.
pub fn is_vmdk(head: &[u8]) -> bool {
    if head.starts_with(&header::MAGIC) || head.starts_with(&header::VMDK3_MAGIC) {
        return true;
    }
    let mut p = 0;
    while p < head.len() {
        match head[p] {
            b'#' => {
                p = head[p..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(head.len(), |i| p + i + 1);
            }
            b' ' => {
                while p < head.len() && head[p] == b' ' {
                    p += 1;
                }
                if p < head.len() && head[p] == b'\r' {
                    p += 1;
                }
                if p == head.len() || head[p] != b'\n' {
                    return false;
                }
                p += 1;
            }
            _ => {
                let rest = &head[p..];
                return [b"1", b"2", b"3"].iter().any(|v| {
                    rest.starts_with(&[b"version=", &v[..], b"\n"].concat())
                        || rest.starts_with(&[b"version=", &v[..], b"\r\n"].concat())
                });
            }
        }
    }
    false
}

/// The virtual size of a vmdk image (sparse extent or descriptor): the
/// sum of its extents, read as qemu reads them.
pub fn virtual_size(path: &Path) -> Result<u64> {
    Ok(inspect::inspect_image(path)?.virtual_size())
}
