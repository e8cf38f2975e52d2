//! The format-neutral read toolkit: host files, the [`BlockDriver`] trait
//! every format implements for reading, and chains of backing layers.
//! This layer imports no format module.

pub mod cache;
pub mod chain;
pub mod codec;
pub mod convert;
pub mod file;
pub mod gate;
pub mod target;

pub use chain::{Chain, Layer, Status};
pub use file::HostFile;

use crate::error::Result;

/// Where a layer keeps guest bytes on the host: `offset` in
/// `files()[file]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostRef {
    pub file: u16,
    pub offset: u64,
}

/// What backs guest bytes `[offset, offset + len)` in ONE layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtentKind {
    /// Bytes at a host offset. `recurse`: the host file's own holes read
    /// as zeros and are reported as such (qemu's `BDRV_BLOCK_RECURSE`:
    /// preallocated metadata, flat extents, static images).
    Data { at: HostRef, recurse: bool },
    /// Reads as zeros in this layer (qemu: allocated, `BDRV_BLOCK_ZERO`);
    /// `at` when the layer still names a host offset (preallocated zero
    /// clusters, raw holes).
    Zero { at: Option<HostRef> },
    /// Falls through to the backing layer; `at` when the layer reserved
    /// host space (qcow2 allocated-but-unwritten subclusters).
    Unallocated { at: Option<HostRef> },
    /// Read through [`BlockDriver::read_compressed`].
    Compressed,
}

/// One extent of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub len: u64,
    pub kind: ExtentKind,
}

/// A stored backing file reference, as the image names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backing {
    /// The name as stored in the image.
    pub name: String,
    /// The name resolved against the image's own name (qemu's
    /// `full-backing-filename`).
    pub full_name: String,
    /// The backing format as stored, if any.
    pub format: Option<String>,
}

/// One opened image layer, read through its format's tables.
pub trait BlockDriver: Send + Sync {
    /// qemu's name of the format (`qcow2`, `raw`...).
    fn format_name(&self) -> &'static str;
    /// The guest-visible size in bytes (a multiple of 512).
    fn virtual_size(&self) -> u64;
    /// The host files: `[0]` the image itself, then data file / extents.
    fn files(&self) -> &[HostFile];
    /// The backing reference as stored (opened by the chain opener only).
    fn backing(&self) -> Option<&Backing>;
    /// True when unallocated areas fall through to a backing image
    /// (qemu's `supports_backing`): such areas of a layer without a
    /// backing image read as zeros but are not "present".
    fn supports_backing(&self) -> bool {
        false
    }
    /// What backs `offset`: reads metadata only. `offset` is below the
    /// virtual size, `0 < max_len`, and the answer's `len` is in
    /// `1..=max_len`.
    fn map(&self, offset: u64, max_len: u64) -> Result<Extent>;
    /// Reads guest bytes at `offset` from an area [`map`](Self::map)
    /// reported as compressed.
    fn read_compressed(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
}
