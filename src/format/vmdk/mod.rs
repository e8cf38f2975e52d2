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

use crate::options::{OptDesc, OptType, SIZE_OPTION};

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
