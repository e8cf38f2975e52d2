//! Plain data as qemu's QAPI defines it, and qemu-img's printers for it.

pub mod check;
pub mod map;

pub use check::ImageCheck;
pub use map::MapEntry;
