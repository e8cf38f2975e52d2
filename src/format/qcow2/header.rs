//! The qcow2 header and its extensions (qemu `docs/interop/qcow2.rst`).
//! All fields are big-endian. One definition, used by the writer and the
//! reader.

use byteorder::{BigEndian, ByteOrder};

/// "QFI\xfb".
pub const QCOW2_MAGIC: u32 = 0x5146_49fb;
/// Length of a version 2 header.
pub const V2_HEADER_LENGTH: u32 = 72;
/// Length of the version 3 header qemu writes (with `compression_type`
/// and its padding).
pub const V3_HEADER_LENGTH: u32 = 112;

/// Header extension type: end of the extension area.
pub const EXT_END: u32 = 0;
/// Header extension type: backing file format name.
pub const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
/// Header extension type: feature name table.
pub const EXT_FEATURE_TABLE: u32 = 0x6803_f857;
/// Header extension type: external data file name.
pub const EXT_DATA_FILE: u32 = 0x4441_5441;
/// Header extension type: bitmaps.
pub const EXT_BITMAPS: u32 = 0x2385_2875;
/// Header extension type: full disk encryption header pointer.
pub const EXT_CRYPTO: u32 = 0x0537_be77;

/// Incompatible feature bit 0: "Dirty bit. If this bit is set then
/// refcounts may be inconsistent, make sure to scan L1/L2 tables to repair
/// refcounts before accessing the image."
pub const INCOMPAT_DIRTY: u64 = 1 << 0;
/// Incompatible feature bit 1: "Corrupt bit. If this bit is set then any
/// data structure may be corrupt and the image must not be written to."
pub const INCOMPAT_CORRUPT: u64 = 1 << 1;
/// Incompatible feature bit 2: "External data file bit."
pub const INCOMPAT_DATA_FILE: u64 = 1 << 2;
/// Incompatible feature bit 3: "Compression type bit. If this bit is set,
/// a non-default compression is used for compressed clusters. The
/// compression_type field must be present and not zero."
pub const INCOMPAT_COMPRESSION: u64 = 1 << 3;
/// Incompatible feature bit 4: "Extended L2 Entries. If this bit is set
/// then L2 table entries use an extended format that allows subcluster-
/// based allocation."
pub const INCOMPAT_EXTL2: u64 = 1 << 4;
/// Compatible feature bit 0: "Lazy refcounts bit. If this bit is set then
/// lazy refcount updates can be used."
pub const COMPAT_LAZY_REFCOUNTS: u64 = 1 << 0;
/// Autoclear feature bit 0: "Bitmaps extension bit."
pub const AUTOCLEAR_BITMAPS: u64 = 1 << 0;
/// Autoclear feature bit 1: "Raw external data bit. If this bit is set,
/// the external data file can be read as a consistent standalone raw
/// image without looking at the qcow2 metadata."
pub const AUTOCLEAR_DATA_FILE_RAW: u64 = 1 << 1;

/// Compression type byte (offset 104): zlib.
pub const COMPRESSION_ZLIB: u8 = 0;
/// Compression type byte (offset 104): zstd.
pub const COMPRESSION_ZSTD: u8 = 1;

/// The qcow2 header (first cluster of the image).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// Offset 4: 2 or 3.
    pub version: u32,
    /// Offset 8: "Offset into the image file at which the backing file name
    /// is stored (NB: The string is not null terminated). 0 if the image
    /// doesn't have a backing file."
    pub backing_file_offset: u64,
    /// Offset 16: "Length of the backing file name in bytes. Must not be
    /// longer than 1023 bytes."
    pub backing_file_size: u32,
    /// Offset 20: "Number of bits that are used for addressing an offset
    /// within a cluster (1 << cluster_bits is the cluster size). Must not be
    /// less than 9 (i.e. 512 byte clusters)." qemu caps it at 21 (2 MiB).
    pub cluster_bits: u32,
    /// Offset 24: virtual disk size in bytes.
    pub size: u64,
    /// Offset 32: 0 none, 1 AES, 2 LUKS.
    pub crypt_method: u32,
    /// Offset 36: number of entries in the active L1 table.
    pub l1_size: u32,
    /// Offset 40: "Offset into the image file at which the active L1 table
    /// starts. Must be aligned to a cluster boundary."
    pub l1_table_offset: u64,
    /// Offset 48: "Offset into the image file at which the refcount table
    /// starts. Must be aligned to a cluster boundary."
    pub refcount_table_offset: u64,
    /// Offset 56: "Number of clusters that the refcount table occupies."
    pub refcount_table_clusters: u32,
    /// Offset 60: number of internal snapshots.
    pub nb_snapshots: u32,
    /// Offset 64: offset of the snapshot table (cluster aligned).
    pub snapshots_offset: u64,
    /// Offset 72 (v3): incompatible feature bits.
    pub incompatible_features: u64,
    /// Offset 80 (v3): compatible feature bits.
    pub compatible_features: u64,
    /// Offset 88 (v3): autoclear feature bits.
    pub autoclear_features: u64,
    /// Offset 96 (v3): "Describes the width of a reference count block
    /// entry: width in bits: refcount_bits = 1 << refcount_order. For
    /// version 2 images, the order is always assumed to be 4 (i.e.
    /// refcount_bits = 16)."
    pub refcount_order: u32,
    /// Offset 100 (v3): "Length of the header structure in bytes."
    pub header_length: u32,
    /// Offset 104: "Defines the compression method used for compressed
    /// clusters." Only present when header_length > 104.
    pub compression_type: u8,
}

/// One header extension (type, data), as stored after the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub kind: u32,
    pub data: Vec<u8>,
}

/// One entry of the feature name table extension: 48 bytes each.
pub struct FeatureName {
    /// 0 incompatible, 1 compatible, 2 autoclear.
    pub kind: u8,
    pub bit: u8,
    pub name: &'static str,
}

/// The feature name table qemu 10 writes, in its order.
pub const FEATURE_TABLE: &[FeatureName] = &[
    FeatureName {
        kind: 0,
        bit: 0,
        name: "dirty bit",
    },
    FeatureName {
        kind: 0,
        bit: 1,
        name: "corrupt bit",
    },
    FeatureName {
        kind: 0,
        bit: 2,
        name: "external data file",
    },
    FeatureName {
        kind: 0,
        bit: 3,
        name: "compression type",
    },
    FeatureName {
        kind: 0,
        bit: 4,
        name: "extended L2 entries",
    },
    FeatureName {
        kind: 1,
        bit: 0,
        name: "lazy refcounts",
    },
    FeatureName {
        kind: 2,
        bit: 0,
        name: "bitmaps",
    },
    FeatureName {
        kind: 2,
        bit: 1,
        name: "raw external data",
    },
];

/// Bytes of one feature name table entry.
pub const FEATURE_NAME_ENTRY_SIZE: usize = 48;

/// True when `head` starts with a qcow2 header (magic and version 2 or 3).
pub fn is_qcow2(head: &[u8]) -> bool {
    head.len() >= 8
        && BigEndian::read_u32(&head[0..4]) == QCOW2_MAGIC
        && matches!(BigEndian::read_u32(&head[4..8]), 2 | 3)
}

impl Header {
    /// The virtual size as qemu's qcow2 driver reports it: the header's
    /// size in whole sectors. `info`, the read path and `check` all take
    /// it from here.
    pub fn virtual_size(&self) -> u64 {
        self.size / 512 * 512
    }

    /// The cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        1u64 << self.cluster_bits
    }

    /// Serialises the fixed part of the header (`header_length` bytes for
    /// v3, 72 for v2).
    pub fn to_bytes(&self) -> Vec<u8> {
        let len = if self.version >= 3 {
            self.header_length as usize
        } else {
            V2_HEADER_LENGTH as usize
        };
        let mut b = vec![0u8; len.max(V2_HEADER_LENGTH as usize)];
        BigEndian::write_u32(&mut b[0..], QCOW2_MAGIC);
        BigEndian::write_u32(&mut b[4..], self.version);
        BigEndian::write_u64(&mut b[8..], self.backing_file_offset);
        BigEndian::write_u32(&mut b[16..], self.backing_file_size);
        BigEndian::write_u32(&mut b[20..], self.cluster_bits);
        BigEndian::write_u64(&mut b[24..], self.size);
        BigEndian::write_u32(&mut b[32..], self.crypt_method);
        BigEndian::write_u32(&mut b[36..], self.l1_size);
        BigEndian::write_u64(&mut b[40..], self.l1_table_offset);
        BigEndian::write_u64(&mut b[48..], self.refcount_table_offset);
        BigEndian::write_u32(&mut b[56..], self.refcount_table_clusters);
        BigEndian::write_u32(&mut b[60..], self.nb_snapshots);
        BigEndian::write_u64(&mut b[64..], self.snapshots_offset);
        if self.version >= 3 && b.len() >= 104 {
            BigEndian::write_u64(&mut b[72..], self.incompatible_features);
            BigEndian::write_u64(&mut b[80..], self.compatible_features);
            BigEndian::write_u64(&mut b[88..], self.autoclear_features);
            BigEndian::write_u32(&mut b[96..], self.refcount_order);
            BigEndian::write_u32(&mut b[100..], self.header_length);
            if b.len() > 104 {
                b[104] = self.compression_type;
            }
        }
        b
    }

    /// Parses a header from the start of a file. Returns `None` when the
    /// magic or version is wrong or `head` is too short; the values are
    /// not otherwise checked (callers bound them against the file).
    pub fn parse(head: &[u8]) -> Option<Header> {
        if !is_qcow2(head) || head.len() < V2_HEADER_LENGTH as usize {
            return None;
        }
        let mut h = Header {
            version: BigEndian::read_u32(&head[4..]),
            backing_file_offset: BigEndian::read_u64(&head[8..]),
            backing_file_size: BigEndian::read_u32(&head[16..]),
            cluster_bits: BigEndian::read_u32(&head[20..]),
            size: BigEndian::read_u64(&head[24..]),
            crypt_method: BigEndian::read_u32(&head[32..]),
            l1_size: BigEndian::read_u32(&head[36..]),
            l1_table_offset: BigEndian::read_u64(&head[40..]),
            refcount_table_offset: BigEndian::read_u64(&head[48..]),
            refcount_table_clusters: BigEndian::read_u32(&head[56..]),
            nb_snapshots: BigEndian::read_u32(&head[60..]),
            snapshots_offset: BigEndian::read_u64(&head[64..]),
            refcount_order: 4,
            header_length: V2_HEADER_LENGTH,
            ..Header::default()
        };
        if h.version >= 3 {
            if head.len() < 104 {
                return None;
            }
            h.incompatible_features = BigEndian::read_u64(&head[72..]);
            h.compatible_features = BigEndian::read_u64(&head[80..]);
            h.autoclear_features = BigEndian::read_u64(&head[88..]);
            h.refcount_order = BigEndian::read_u32(&head[96..]);
            h.header_length = BigEndian::read_u32(&head[100..]);
            if h.header_length > 104 && head.len() > 104 {
                h.compression_type = head[104];
            }
        }
        Some(h)
    }
}

impl Extension {
    /// Serialises the extension: type, length, data padded to 8 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; 8];
        BigEndian::write_u32(&mut b[0..], self.kind);
        BigEndian::write_u32(&mut b[4..], self.data.len() as u32);
        b.extend_from_slice(&self.data);
        b.resize(8 + self.data.len().div_ceil(8) * 8, 0);
        b
    }

    /// The feature name table extension qemu writes.
    pub fn feature_table() -> Extension {
        let mut data = Vec::with_capacity(FEATURE_TABLE.len() * FEATURE_NAME_ENTRY_SIZE);
        for f in FEATURE_TABLE {
            let mut e = [0u8; FEATURE_NAME_ENTRY_SIZE];
            e[0] = f.kind;
            e[1] = f.bit;
            e[2..2 + f.name.len()].copy_from_slice(f.name.as_bytes());
            data.extend_from_slice(&e);
        }
        Extension {
            kind: EXT_FEATURE_TABLE,
            data,
        }
    }

    /// Parses the extension area starting at `offset` in `buf` (which
    /// holds at least the first cluster), stopping at the end marker or
    /// at the end of `buf`. Lengths are bounded by `buf`.
    pub fn parse_all(buf: &[u8], mut offset: usize) -> Result<Vec<Extension>, String> {
        let mut out = Vec::new();
        loop {
            if offset + 8 > buf.len() {
                return Err("header extension runs past the first cluster".into());
            }
            let kind = BigEndian::read_u32(&buf[offset..]);
            let len = BigEndian::read_u32(&buf[offset + 4..]) as usize;
            if kind == EXT_END {
                return Ok(out);
            }
            let start = offset + 8;
            let end = start
                .checked_add(len)
                .filter(|&e| e <= buf.len())
                .ok_or_else(|| {
                    format!("header extension 0x{kind:08x} length {len} is too large")
                })?;
            out.push(Extension {
                kind,
                data: buf[start..end].to_vec(),
            });
            offset = start + len.div_ceil(8) * 8;
        }
    }
}

/// A failure reading the image (exit 1), with qemu's wording.
pub(super) fn fail(msg: impl Into<String>) -> crate::error::Error {
    crate::error::Error::Failed(msg.into())
}

/// A NUL-terminated (or full-length) string from a fixed field.
pub(super) fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    crate::qapi::bytes::string_from_bytes(&b[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = Header {
            version: 3,
            cluster_bits: 16,
            size: 1 << 30,
            l1_size: 2,
            l1_table_offset: 0x30000,
            refcount_table_offset: 0x10000,
            refcount_table_clusters: 1,
            refcount_order: 4,
            header_length: V3_HEADER_LENGTH,
            ..Header::default()
        };
        let b = h.to_bytes();
        assert_eq!(b.len(), 112);
        assert_eq!(Header::parse(&b), Some(h));
    }

    #[test]
    fn feature_table_size() {
        let e = Extension::feature_table().to_bytes();
        assert_eq!(e.len(), 8 + 8 * 48);
    }
}
