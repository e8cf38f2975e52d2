//! `info`: what an image is, as qemu-img describes it.
//!
//! [`ImageInfo`] mirrors qemu's QAPI `ImageInfo`. Each format's reader
//! (`format::<name>::inspect`) fills the format-level fields; this layer
//! adds what every format shares (file name, allocation, the `file`
//! child) and renders the human and JSON forms.
//!
//! What a reader fills: `format`, `virtual_size`, `cluster_size`,
//! `dirty_flag` (if the format has one), `encrypted` (only when true),
//! `backing_filename`, `backing_filename_format`, `snapshots`,
//! `format_specific`, and optionally `actual_size` (when the image spans
//! several files, e.g. vmdk extents) and `children` (extra file nodes in
//! the order the format opens them, e.g. vmdk's `extents.0`, `extents.1`,
//! each with only `filename` set). The info layer ([`collect`]) then sets
//! `filename`, the default `actual_size`, `full_backing_filename`, and
//! builds every child's file-node description plus the `file` child, in
//! the order qemu lists them (last opened first, `file` last).
//!
//! Rendering: an `Option` that is `None` is left out, as qemu leaves out
//! an absent optional member; `encrypted` and `compressed` appear only
//! when true, `snapshots` only when there are some.

/// One image, as `qemu-img info` describes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageInfo {
    /// The name the image was opened by.
    pub filename: String,
    /// qemu's format name (`qcow2`, `vmdk`, `raw`...), or an extent's kind
    /// (`SPARSE`, `FLAT`) inside vmdk's extent list.
    pub format: String,
    /// Guest-visible size in bytes.
    pub virtual_size: u64,
    /// Allocated bytes on the host (st_blocks × 512).
    pub actual_size: Option<u64>,
    /// The format's cluster/grain/block size, where it has one.
    pub cluster_size: Option<u64>,
    /// Whether the image is marked dirty (qcow2 dirty bit, ...).
    pub dirty_flag: Option<bool>,
    /// Whether the image is encrypted (shown only when true).
    pub encrypted: Option<bool>,
    /// Whether the extent is compressed (vmdk extents).
    pub compressed: Option<bool>,
    /// The backing file name as stored in the image.
    pub backing_filename: Option<String>,
    /// The backing file name resolved against the image's directory.
    pub full_backing_filename: Option<String>,
    /// The backing format as stored in the image.
    pub backing_filename_format: Option<String>,
    /// Internal snapshots (qcow2).
    pub snapshots: Vec<SnapshotInfo>,
    /// The format's own details.
    pub format_specific: Option<FormatSpecific>,
    /// Child nodes (`file`, vmdk `extents.N`...), each with its info.
    pub children: Vec<ChildInfo>,
}

/// One child node of an image.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildInfo {
    pub name: String,
    pub info: ImageInfo,
}

/// One internal snapshot, as qemu's `SnapshotInfo`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SnapshotInfo {
    pub id: String,
    pub name: String,
    pub vm_state_size: u64,
    pub date_sec: u64,
    pub date_nsec: u32,
    pub vm_clock_sec: u64,
    pub vm_clock_nsec: u32,
    pub icount: Option<u64>,
}

/// qemu's `ImageInfoSpecific`: the `format-specific` object.
#[derive(Debug, Clone, PartialEq)]
pub enum FormatSpecific {
    Qcow2(Qcow2Specific),
    Vmdk(VmdkSpecific),
    /// The `file` protocol node (empty data).
    File,
}

/// qemu's `ImageInfoSpecificQCow2`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Qcow2Specific {
    /// "0.10" or "1.1".
    pub compat: String,
    pub data_file: Option<String>,
    pub data_file_raw: Option<bool>,
    pub extended_l2: Option<bool>,
    pub lazy_refcounts: Option<bool>,
    pub corrupt: Option<bool>,
    pub refcount_bits: u32,
    /// "zlib" or "zstd".
    pub compression_type: String,
    /// Persistent dirty bitmaps (present only when the image has some).
    pub bitmaps: Option<Vec<Qcow2BitmapInfo>>,
    /// Encryption details (present only for encrypted images).
    pub encrypt: Option<Qcow2Encryption>,
}

/// qemu's `Qcow2BitmapInfo`: one persistent dirty bitmap.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Qcow2BitmapInfo {
    pub name: String,
    /// Bytes covered by one bit.
    pub granularity: u64,
    /// `in-use`, `auto`, in that order, as set.
    pub flags: Vec<&'static str>,
}

/// qemu's `ImageInfoSpecificQCow2Encryption`.
#[derive(Debug, Clone, PartialEq)]
pub enum Qcow2Encryption {
    /// Legacy AES-CBC (crypt_method 1).
    Aes,
    /// LUKS (crypt_method 2), with what its header says.
    Luks(Box<LuksInfo>),
}

/// qemu's `QCryptoBlockInfoLUKS`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LuksInfo {
    pub cipher_alg: String,
    pub cipher_mode: String,
    pub ivgen_alg: String,
    pub ivgen_hash_alg: Option<String>,
    pub hash_alg: String,
    pub detached_header: bool,
    pub payload_offset: u64,
    pub master_key_iters: u64,
    pub uuid: String,
    pub slots: Vec<LuksSlot>,
}

/// qemu's `QCryptoBlockInfoLUKSSlot`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LuksSlot {
    pub active: bool,
    /// Only for active slots.
    pub iters: Option<u64>,
    /// Only for active slots.
    pub stripes: Option<u64>,
    pub key_offset: u64,
}

/// qemu's `ImageInfoSpecificVmdk`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VmdkSpecific {
    pub create_type: String,
    pub cid: u32,
    pub parent_cid: u32,
    /// One entry per extent: filename, format ("SPARSE"/"FLAT"/"VMFS"...),
    /// virtual_size, cluster_size (sparse), compressed (if so).
    pub extents: Vec<ImageInfo>,
}
