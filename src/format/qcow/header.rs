//! The qcow (version 1) header. qcow v1 has no published specification;
//! this follows qemu's `block/qcow.c`, which defines the format. All
//! integers are big-endian; one definition used by the writer and the
//! reader.
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 4 | magic "QFI\xfb" |
//! | 4 | 4 | version (1) |
//! | 8 | 8 | backing_file_offset |
//! | 16 | 4 | backing_file_size |
//! | 20 | 4 | mtime |
//! | 24 | 8 | size (bytes) |
//! | 32 | 1 | cluster_bits |
//! | 33 | 1 | l2_bits |
//! | 34 | 2 | padding |
//! | 36 | 4 | crypt_method |
//! | 40 | 8 | l1_table_offset |

use byteorder::{BigEndian, ByteOrder};

/// `QFI\xfb`, big-endian, at offset 0 (the same magic as qcow2).
pub const QCOW_MAGIC: u32 = 0x5146_49fb;
/// The only version of this format.
pub const QCOW_VERSION: u32 = 1;
/// Length of the header.
pub const HEADER_BYTES: usize = 48;
/// `crypt_method`: not encrypted.
pub const CRYPT_NONE: u32 = 0;
/// `crypt_method`: AES-CBC (qemu reads but no longer creates such images
/// without a secret; diskforge does not create them).
pub const CRYPT_AES: u32 = 1;
/// Cluster bits qemu-img writes without a backing file: 4 KiB clusters.
pub const CLUSTER_BITS: u8 = 12;
/// L2 bits without a backing file: 512 entries, 4 KiB L2 tables.
pub const L2_BITS: u8 = 9;
/// Cluster bits with a backing file: "512 byte cluster to avoid copying
/// unmodified sectors".
pub const CLUSTER_BITS_WITH_BACKING: u8 = 9;
/// L2 bits with a backing file: 4096 entries, "32 KB L2 tables".
pub const L2_BITS_WITH_BACKING: u8 = 12;
/// The smallest and largest cluster_bits qemu opens (512 B to 64 KiB).
pub const CLUSTER_BITS_RANGE: std::ops::RangeInclusive<u8> = 9..=16;
/// The smallest and largest l2_bits qemu opens ("L2 table size must be
/// between 512 and 64k" bytes, 8 bytes an entry).
pub const L2_BITS_RANGE: std::ops::RangeInclusive<u8> = 6..=13;
/// Longest backing file name qemu reads.
pub const MAX_BACKING_FILE_SIZE: u32 = 1023;
/// Header fields and the backing file name are followed by the L1 table
/// at the next multiple of this.
pub const L1_ALIGNMENT: u64 = 8;

/// The qcow header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QcowHeader {
    /// Offset 0: [`QCOW_MAGIC`].
    pub magic: u32,
    /// Offset 4: [`QCOW_VERSION`].
    pub version: u32,
    /// Offset 8: where the backing file name is stored (not NUL
    /// terminated), 0 without one. qemu-img puts it right after the
    /// header.
    pub backing_file_offset: u64,
    /// Offset 16: length of the backing file name in bytes (qemu reads at
    /// most 1023).
    pub backing_file_size: u32,
    /// Offset 20: modification time (qemu-img writes 0).
    pub mtime: u32,
    /// Offset 24: virtual disk size in bytes.
    pub size: u64,
    /// Offset 32: log2 of the cluster size.
    pub cluster_bits: u8,
    /// Offset 33: log2 of the number of 8-byte entries of an L2 table.
    pub l2_bits: u8,
    /// Offset 36: 0 none, 1 AES.
    pub crypt_method: u32,
    /// Offset 40: the L1 table, `ceil(size / 2^(cluster_bits + l2_bits))`
    /// big-endian u64 entries.
    pub l1_table_offset: u64,
}

impl QcowHeader {
    /// The virtual size as qemu's qcow driver reports it: the header's
    /// size in whole sectors (`info` and the read path take it from here).
    pub fn virtual_size(&self) -> u64 {
        self.size / 512 * 512
    }

    /// The 48 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        BigEndian::write_u32(&mut b[0..], self.magic);
        BigEndian::write_u32(&mut b[4..], self.version);
        BigEndian::write_u64(&mut b[8..], self.backing_file_offset);
        BigEndian::write_u32(&mut b[16..], self.backing_file_size);
        BigEndian::write_u32(&mut b[20..], self.mtime);
        BigEndian::write_u64(&mut b[24..], self.size);
        b[32] = self.cluster_bits;
        b[33] = self.l2_bits;
        BigEndian::write_u32(&mut b[36..], self.crypt_method);
        BigEndian::write_u64(&mut b[40..], self.l1_table_offset);
        b
    }

    /// Parses the 48 header bytes (no validation).
    pub fn parse(b: &[u8; HEADER_BYTES]) -> Self {
        QcowHeader {
            magic: BigEndian::read_u32(&b[0..]),
            version: BigEndian::read_u32(&b[4..]),
            backing_file_offset: BigEndian::read_u64(&b[8..]),
            backing_file_size: BigEndian::read_u32(&b[16..]),
            mtime: BigEndian::read_u32(&b[20..]),
            size: BigEndian::read_u64(&b[24..]),
            cluster_bits: b[32],
            l2_bits: b[33],
            crypt_method: BigEndian::read_u32(&b[36..]),
            l1_table_offset: BigEndian::read_u64(&b[40..]),
        }
    }

    /// Entries of the L1 table: one per `2^(cluster_bits + l2_bits)` bytes
    /// of virtual size. `None` when that overflows.
    pub fn l1_size(&self) -> Option<u64> {
        let shift = u32::from(self.cluster_bits) + u32::from(self.l2_bits);
        let span = 1u64.checked_shl(shift)?;
        Some(self.size.checked_add(span - 1)? >> shift)
    }
}

/// True when `head` holds a qcow version 1 header (qemu's probe: the whole
/// header, the magic and version 1).
pub fn is_qcow(head: &[u8]) -> bool {
    head.len() >= HEADER_BYTES
        && BigEndian::read_u32(&head[0..]) == QCOW_MAGIC
        && BigEndian::read_u32(&head[4..]) == QCOW_VERSION
}
