//! The sparse extent header (`KDMV`), the one definition the writer and the
//! reader share, and the stream-optimized markers.
//!
//! VMware "Virtual Disk Format 1.1", section "Hosted Sparse Extent Header":
//! the header fills sector 0 of every sparse extent, all integers
//! little-endian, packed (no padding between fields). Offsets below are
//! byte offsets from the start of the file.

/// `KDMV` (the spec's `SPARSE_MAGICNUMBER` 0x564d444b, little-endian).
pub const MAGIC: [u8; 4] = *b"KDMV";

/// `COWD`: the older ESX "vmfsSparse" (VMDK3) extent header.
pub const VMDK3_MAGIC: [u8; 4] = *b"COWD";

/// One sector: every offset and size in the header counts these.
pub const SECTOR_SIZE: u64 = 512;

/// flags bit 0: "valid new line detection test" (the check bytes are set).
pub const FLAG_NL_DETECT: u32 = 1 << 0;
/// flags bit 1: "redundant grain table will be used".
pub const FLAG_RGD: u32 = 1 << 1;
/// flags bit 2: zeroed-grain GTEs are in use (5.0 technote: a grain table
/// entry of 1 reads as zeros without consulting the parent).
pub const FLAG_ZERO_GRAIN: u32 = 1 << 2;
/// flags bit 16: "the grains are compressed".
pub const FLAG_COMPRESSED: u32 = 1 << 16;
/// flags bit 17: "there are markers in the virtual disk to identify every
/// block of metadata or data".
pub const FLAG_MARKERS: u32 = 1 << 17;

/// `compressAlgorithm` value for RFC 1951 deflate.
pub const COMPRESSION_DEFLATE: u16 = 1;

/// `gdOffset` of a stream-optimized extent whose grain directory follows
/// the data: "GD_AT_END ... the real value is in the footer".
pub const GD_AT_END: u64 = u64::MAX;

/// "singleEndLineChar = '\n', nonEndLineChar = ' ', doubleEndLineChar1 =
/// '\r', doubleEndLineChar2 = '\n'": bytes that reveal a text-mode
/// (newline-translating) file transfer.
pub const CHECK_BYTES: [u8; 4] = [b'\n', b' ', b'\r', b'\n'];

/// Grain table entries per grain table qemu writes ("numGTEsPerGT ... 512").
pub const GTES_PER_GT: u32 = 512;
/// Grain size qemu writes: 128 sectors (64 KiB).
pub const GRANULARITY: u64 = 128;
/// Sector of the embedded descriptor in a monolithic sparse extent.
pub const DESCRIPTOR_OFFSET: u64 = 1;
/// Length of the embedded descriptor area, in sectors.
pub const DESCRIPTOR_SECTORS: u64 = 20;

/// Stream-optimized marker types (the `type` field of a metadata marker).
pub const MARKER_END_OF_STREAM: u32 = 0;
pub const MARKER_GRAIN_TABLE: u32 = 1;
pub const MARKER_GRAIN_DIRECTORY: u32 = 2;
pub const MARKER_FOOTER: u32 = 3;

/// The header of a hosted sparse extent (`SparseExtentHeader`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SparseExtentHeader {
    /// Offset 4, u32. 1, 2 with zeroed-grain GTEs, 3 stream-optimized.
    pub version: u32,
    /// Offset 8, u32: the `FLAG_*` bits.
    pub flags: u32,
    /// Offset 12, u64: "the capacity of this extent in sectors — should be
    /// a multiple of the grain size".
    pub capacity: u64,
    /// Offset 20, u64: "the size of a grain in sectors. It must be a power
    /// of 2 and must be greater than 8 (4KB)".
    pub granularity: u64,
    /// Offset 28, u64: "the offset of the embedded descriptor in the
    /// extent", in sectors; 0 when there is none.
    pub desc_offset: u64,
    /// Offset 36, u64: "valid only if descriptorOffset is non-zero",
    /// sectors.
    pub desc_size: u64,
    /// Offset 44, u32: "the number of entries in a grain table" (512).
    pub num_gtes_per_gt: u32,
    /// Offset 48, u64: the redundant grain directory, in sectors.
    pub rgd_offset: u64,
    /// Offset 56, u64: the grain directory, in sectors ([`GD_AT_END`] for
    /// a stream whose footer holds the real value).
    pub gd_offset: u64,
    /// Offset 64, u64: "the number of sectors occupied by the metadata",
    /// i.e. where the first grain may start.
    pub grain_offset: u64,
    /// Offset 72, u8: "uncleanShutdown", set while a writer has it open.
    pub unclean_shutdown: u8,
    /// Offset 73, 4 bytes: [`CHECK_BYTES`].
    pub check_bytes: [u8; 4],
    /// Offset 77, u16: 0 none, 1 deflate.
    pub compress_algorithm: u16,
}

/// Bytes of the header that carry fields (magic included); the rest of the
/// sector ("pad[433]") is zero.
pub const HEADER_LEN: usize = 79;

impl SparseExtentHeader {
    /// The 79 meaningful bytes of sector 0 (magic first).
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..8].copy_from_slice(&self.version.to_le_bytes());
        b[8..12].copy_from_slice(&self.flags.to_le_bytes());
        b[12..20].copy_from_slice(&self.capacity.to_le_bytes());
        b[20..28].copy_from_slice(&self.granularity.to_le_bytes());
        b[28..36].copy_from_slice(&self.desc_offset.to_le_bytes());
        b[36..44].copy_from_slice(&self.desc_size.to_le_bytes());
        b[44..48].copy_from_slice(&self.num_gtes_per_gt.to_le_bytes());
        b[48..56].copy_from_slice(&self.rgd_offset.to_le_bytes());
        b[56..64].copy_from_slice(&self.gd_offset.to_le_bytes());
        b[64..72].copy_from_slice(&self.grain_offset.to_le_bytes());
        b[72] = self.unclean_shutdown;
        b[73..77].copy_from_slice(&self.check_bytes);
        b[77..79].copy_from_slice(&self.compress_algorithm.to_le_bytes());
        b
    }

    /// Parses the fields from the start of an extent (magic included).
    /// `head` shorter than the header reads as zero-padded, as qemu's
    /// reads past the end of a file do; the caller checks the magic.
    pub fn parse(head: &[u8]) -> SparseExtentHeader {
        let mut b = [0u8; HEADER_LEN];
        let n = head.len().min(HEADER_LEN);
        b[..n].copy_from_slice(&head[..n]);
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(x)
        };
        SparseExtentHeader {
            version: u32_at(4),
            flags: u32_at(8),
            capacity: u64_at(12),
            granularity: u64_at(20),
            desc_offset: u64_at(28),
            desc_size: u64_at(36),
            num_gtes_per_gt: u32_at(44),
            rgd_offset: u64_at(48),
            gd_offset: u64_at(56),
            grain_offset: u64_at(64),
            unclean_shutdown: b[72],
            check_bytes: [b[73], b[74], b[75], b[76]],
            compress_algorithm: u16::from_le_bytes([b[77], b[78]]),
        }
    }

    /// True when the grains are deflate-compressed (stream-optimized).
    pub fn compressed(&self) -> bool {
        self.compress_algorithm == COMPRESSION_DEFLATE
    }
}

/// A stream-optimized metadata marker (one sector): `val` (u64, sectors
/// of metadata that follow), `size` (u32, 0 for metadata markers),
/// `type` (u32, `MARKER_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub val: u64,
    pub size: u32,
    pub kind: u32,
}

impl Marker {
    /// Parses the first 16 bytes of a marker sector.
    pub fn parse(b: &[u8; 16]) -> Marker {
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[0..8]);
        Marker {
            val: u64::from_le_bytes(v),
            size: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            kind: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        }
    }
}

/// The layout qemu gives a new sparse extent of `capacity` sectors: grain
/// directory sizes and where each table goes (all in sectors).
///
/// qemu computes grain and table counts in 32-bit arithmetic; for extents
/// of 256 TiB and more they wrap, and so do these (the files must be the
/// same bytes as qemu's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseLayout {
    /// Grain tables (= grain directory entries).
    pub gt_count: u32,
    /// Sectors of one grain table (512 entries × 4 bytes = 4).
    pub gt_sectors: u32,
    /// Sectors of one grain directory.
    pub gd_sectors: u32,
}

impl SparseLayout {
    /// The layout of an extent of `capacity` sectors.
    pub fn new(capacity: u64) -> SparseLayout {
        let grains = capacity.div_ceil(GRANULARITY) as u32;
        let gt_sectors = (GTES_PER_GT as u64 * 4).div_ceil(SECTOR_SIZE) as u32;
        let gt_count = grains.wrapping_add(GTES_PER_GT - 1) / GTES_PER_GT;
        let gd_sectors = (gt_count as u64 * 4).div_ceil(SECTOR_SIZE) as u32;
        SparseLayout {
            gt_count,
            gt_sectors,
            gd_sectors,
        }
    }

    /// Sectors of one directory plus its grain tables.
    fn directory_span(&self) -> u64 {
        self.gd_sectors as u64 + self.gt_sectors.wrapping_mul(self.gt_count) as u64
    }

    /// The header qemu writes for this layout: descriptor area at sector 1
    /// (20 sectors), redundant directory and its tables, then the
    /// directory and its tables, grains from the next 128-sector boundary.
    pub fn header(
        &self,
        capacity: u64,
        compressed: bool,
        zeroed_grain: bool,
    ) -> SparseExtentHeader {
        let version = if compressed {
            3
        } else if zeroed_grain {
            2
        } else {
            1
        };
        let flags = FLAG_RGD
            | FLAG_NL_DETECT
            | if compressed {
                FLAG_COMPRESSED | FLAG_MARKERS
            } else {
                0
            }
            | if zeroed_grain { FLAG_ZERO_GRAIN } else { 0 };
        let rgd_offset = DESCRIPTOR_OFFSET + DESCRIPTOR_SECTORS;
        let gd_offset = rgd_offset + self.directory_span();
        let grain_offset = (gd_offset + self.directory_span()).div_ceil(GRANULARITY) * GRANULARITY;
        SparseExtentHeader {
            version,
            flags,
            capacity,
            granularity: GRANULARITY,
            desc_offset: DESCRIPTOR_OFFSET,
            desc_size: DESCRIPTOR_SECTORS,
            num_gtes_per_gt: GTES_PER_GT,
            rgd_offset,
            gd_offset,
            grain_offset,
            unclean_shutdown: 0,
            check_bytes: CHECK_BYTES,
            compress_algorithm: if compressed { COMPRESSION_DEFLATE } else { 0 },
        }
    }

    /// A grain directory whose tables follow it directly (`first_table`
    /// is the sector after the directory), as little-endian bytes padded
    /// to whole sectors.
    pub fn directory(&self, first_table: u64) -> Vec<u8> {
        let mut buf = vec![0u8; self.gd_sectors as usize * SECTOR_SIZE as usize];
        let mut sector = first_table as u32;
        for entry in buf.chunks_exact_mut(4).take(self.gt_count as usize) {
            entry.copy_from_slice(&sector.to_le_bytes());
            sector = sector.wrapping_add(self.gt_sectors);
        }
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let l = SparseLayout::new(2 << 20);
        let h = l.header(2 << 20, false, true);
        assert_eq!(SparseExtentHeader::parse(&h.to_bytes()), h);
        assert_eq!(h.rgd_offset, 21);
        assert_eq!(h.gd_offset, 21 + 1 + 4 * 32);
    }
}
