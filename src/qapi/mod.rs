//! Plain data as qemu's QAPI defines it, and qemu-img's printers for it.

pub mod map;

pub use map::MapEntry;
