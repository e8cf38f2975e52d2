//! Plain data as qemu's QAPI defines it, and qemu-img's printers for it.

pub mod bytes;
pub mod check;
pub mod info;
pub mod map;
pub mod qobject;
pub mod render;

pub use check::ImageCheck;
pub use info::{
    ChildInfo, FormatSpecific, ImageInfo, LuksInfo, LuksSlot, Qcow2BitmapInfo, Qcow2Encryption,
    Qcow2Specific, SnapshotInfo, VmdkSpecific,
};
pub use map::MapEntry;
pub use render::{to_value, write_human, write_human_chain, write_json, write_json_chain};
