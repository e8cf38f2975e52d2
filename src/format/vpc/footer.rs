//! The VHD hard disk footer and dynamic disk header (Microsoft "Virtual
//! Hard Disk Image Format Specification" 1.0), and the CHS geometry
//! qemu derives the virtual size from. All integers are big-endian; one
//! definition used by the writer and the reader.

use byteorder::{BigEndian, ByteOrder};

/// Size of the footer (and of its copy at offset 0 of a dynamic disk).
pub const FOOTER_BYTES: usize = 512;
/// Size of the dynamic disk header.
pub const DYNAMIC_HEADER_BYTES: usize = 1024;
/// The footer's cookie: "conectix".
pub const VHD_COOKIE: &[u8; 8] = b"conectix";
/// The dynamic disk header's cookie: "cxsparse".
pub const DYNAMIC_COOKIE: &[u8; 8] = b"cxsparse";
/// Footer `features`: "Reserved. This bit must always be set to 1."
pub const FEATURES_RESERVED: u32 = 0x0000_0002;
/// Footer `file_format_version` and dynamic header `header_version`: 1.0.
pub const VHD_VERSION_1_0: u32 = 0x0001_0000;
/// `creator_application` qemu writes when the size follows the CHS
/// geometry.
pub const CREATOR_QEMU: &[u8; 4] = b"qemu";
/// `creator_application` qemu writes with `force_size=on`: readers must
/// use `current_size`, not the geometry.
pub const CREATOR_QEMU_FORCE_SIZE: &[u8; 4] = b"qem2";
/// `creator_version` qemu writes: "Version of Virtual PC 2007" (5.3).
pub const CREATOR_VERSION: u32 = 0x0005_0003;
/// `creator_host_os`: "Wi2k" (Windows).
pub const CREATOR_HOST_WINDOWS: &[u8; 4] = b"Wi2k";
/// `disk_type`: fixed hard disk.
pub const DISK_TYPE_FIXED: u32 = 2;
/// `disk_type`: dynamic hard disk.
pub const DISK_TYPE_DYNAMIC: u32 = 3;
/// `disk_type`: differencing hard disk.
pub const DISK_TYPE_DIFFERENCING: u32 = 4;
/// "This field is used for dynamic disks and differencing disks, but not
/// for fixed disks. For fixed disks, this field should be set to
/// 0xFFFFFFFF." (qemu sets all 64 bits, as MS tools expect.)
pub const NO_DATA_OFFSET: u64 = u64::MAX;
/// The VHD timestamp counts "the number of seconds since January 1, 2000
/// 12:00:00 AM in UTC/GMT": this is that moment in Unix time.
pub const VHD_TIMESTAMP_BASE: u64 = 946_684_800;
/// Where qemu puts the dynamic header: right after the footer copy.
pub const DYNAMIC_HEADER_OFFSET: u64 = FOOTER_BYTES as u64;
/// Where qemu puts the block allocation table: after the dynamic header.
pub const BAT_OFFSET: u64 = DYNAMIC_HEADER_OFFSET + DYNAMIC_HEADER_BYTES as u64;
/// The block size qemu writes: 2 MiB ("2 MB by default").
pub const VHD_BLOCK_SIZE: u32 = 0x0020_0000;
/// A BAT entry of a block not allocated.
pub const BAT_UNALLOCATED: u32 = 0xffff_ffff;
/// The sector size all offsets and the geometry count in.
pub const VHD_SECTOR_SIZE: u64 = 512;

/// Largest cylinder count of the CHS geometry.
pub const CHS_MAX_CYLINDERS: u16 = 65535;
/// Largest head count qemu uses (the spec's algorithm allows 16).
pub const CHS_MAX_HEADS: u8 = 16;
/// Largest sectors-per-track count (the spec's algorithm allows 255).
pub const CHS_MAX_SECTORS: u8 = 255;
/// The largest geometry, 65535 × 16 × 255 sectors (about 127 GiB): a disk
/// this big or bigger takes its size from `current_size`, not the CHS
/// product.
pub const CHS_MAX_GEOMETRY: u64 =
    CHS_MAX_CYLINDERS as u64 * CHS_MAX_HEADS as u64 * CHS_MAX_SECTORS as u64;
/// qemu's limit: 0xff000000 sectors, 2040 GiB.
pub const VHD_MAX_SECTORS: u64 = 0xff00_0000;

mod off {
    pub const COOKIE: usize = 0;
    pub const FEATURES: usize = 8;
    pub const VERSION: usize = 12;
    pub const DATA_OFFSET: usize = 16;
    pub const TIMESTAMP: usize = 24;
    pub const CREATOR_APP: usize = 28;
    pub const CREATOR_VERSION: usize = 32;
    pub const CREATOR_HOST_OS: usize = 36;
    pub const ORIGINAL_SIZE: usize = 40;
    pub const CURRENT_SIZE: usize = 48;
    pub const CYLINDERS: usize = 56;
    pub const HEADS: usize = 58;
    pub const SECTORS_PER_TRACK: usize = 59;
    pub const DISK_TYPE: usize = 60;
    pub const CHECKSUM: usize = 64;
    pub const UNIQUE_ID: usize = 68;
    pub const SAVED_STATE: usize = 84;

    pub const DYN_COOKIE: usize = 0;
    pub const DYN_DATA_OFFSET: usize = 8;
    pub const DYN_TABLE_OFFSET: usize = 16;
    pub const DYN_VERSION: usize = 24;
    pub const DYN_MAX_TABLE_ENTRIES: usize = 28;
    pub const DYN_BLOCK_SIZE: usize = 32;
    pub const DYN_CHECKSUM: usize = 36;
}

/// CHS geometry as the footer stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Geometry {
    pub cylinders: u16,
    pub heads: u8,
    pub sectors_per_track: u8,
}

impl Geometry {
    /// The largest geometry, 65535 × 16 × 255.
    pub const MAX: Geometry = Geometry {
        cylinders: CHS_MAX_CYLINDERS,
        heads: CHS_MAX_HEADS,
        sectors_per_track: CHS_MAX_SECTORS,
    };

    /// Cylinders × heads × sectors per track.
    pub fn total_sectors(self) -> u64 {
        u64::from(self.cylinders) * u64::from(self.heads) * u64::from(self.sectors_per_track)
    }

    /// The spec's CHS calculation (appendix "CHS Calculation") for a disk
    /// of `total_sectors`, as qemu implements it: at least 65535 × 16 × 63
    /// sectors use 16 heads and 255 sectors per track. The product may be
    /// smaller than `total_sectors` (the geometry rounds down).
    /// Intermediate values have the widths of the footer fields (8-bit
    /// heads, 16-bit cylinders), as in qemu.
    pub fn for_sectors(total_sectors: u64) -> Geometry {
        let total = total_sectors.min(CHS_MAX_GEOMETRY);
        let (heads, spt, cyls_times_heads): (u8, u8, u32);
        if total >= 65535 * 16 * 63 {
            spt = 255;
            heads = 16;
            cyls_times_heads = (total / u64::from(spt)) as u32;
        } else {
            let mut s: u8 = 17;
            let mut cth = (total / u64::from(s)) as u32;
            let mut h = cth.div_ceil(1024) as u8;
            if h < 4 {
                h = 4;
            }
            if cth >= u32::from(h) * 1024 || h > 16 {
                s = 31;
                h = 16;
                cth = (total / u64::from(s)) as u32;
            }
            if cth >= u32::from(h) * 1024 {
                s = 63;
                h = 16;
                cth = (total / u64::from(s)) as u32;
            }
            spt = s;
            heads = h;
            cyls_times_heads = cth;
        }
        Geometry {
            cylinders: (cyls_times_heads / u32::from(heads)) as u16,
            heads,
            sectors_per_track: spt,
        }
    }
}

/// The hard disk footer: the last 512 bytes of every VHD, copied to offset
/// 0 of dynamic disks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// Offset 0: "conectix".
    pub cookie: [u8; 8],
    /// Offset 8: feature bits; bit 1 is reserved and always set.
    pub features: u32,
    /// Offset 12: file format version, 0x00010000.
    pub file_format_version: u32,
    /// Offset 16: "the absolute byte offset, from the beginning of the file,
    /// to the next structure" (the dynamic header); all ones for fixed
    /// disks.
    pub data_offset: u64,
    /// Offset 24: creation time, seconds since 2000-01-01 00:00:00 UTC.
    pub timestamp: u32,
    /// Offset 28: the creating application ("qemu", "qem2", "vpc ",
    /// "win "...). qemu reads the size from `current_size` for "qem2",
    /// "win ", "d2v ", "CTXS" and "tap\0", from the geometry otherwise.
    pub creator_application: [u8; 4],
    /// Offset 32: major << 16 | minor version of the creator.
    pub creator_version: u32,
    /// Offset 36: host OS ("Wi2k" for Windows, "Mac " for Macintosh).
    pub creator_host_os: [u8; 4],
    /// Offset 40: "the size of the hard disk in bytes ... at creation time".
    pub original_size: u64,
    /// Offset 48: "the current size of the hard disk, in bytes".
    pub current_size: u64,
    /// Offsets 56..60: cylinders (16 bits), heads, sectors per track.
    pub geometry: Geometry,
    /// Offset 60: 2 fixed, 3 dynamic, 4 differencing.
    pub disk_type: u32,
    /// Offset 64: "one's complement of the sum of all the bytes in the
    /// footer without the checksum field", see [`vhd_checksum`].
    pub checksum: u32,
    /// Offset 68: unique id (qemu: random UUID in RFC 4122 byte order).
    pub unique_id: [u8; 16],
    /// Offset 84: 1 when the disk is in a saved state.
    pub saved_state: u8,
}

/// "The checksum is a one's complement of the sum of all the bytes in the
/// footer [or header] without the checksum field": the sum of every byte
/// of `bytes` (whose checksum field must be zero), inverted.
pub fn vhd_checksum(bytes: &[u8]) -> u32 {
    !bytes
        .iter()
        .fold(0u32, |sum, &b| sum.wrapping_add(u32::from(b)))
}

/// The checksum of a footer as read from a file, as qemu checks it: over
/// every one of its 512 bytes, the reserved ones included, with the
/// checksum field (offset 64) as zero.
pub fn footer_checksum(raw: &[u8; FOOTER_BYTES]) -> u32 {
    let mut b = *raw;
    b[off::CHECKSUM..off::CHECKSUM + 4].fill(0);
    vhd_checksum(&b)
}

impl Footer {
    /// The footer bytes with the stored `checksum` field.
    pub fn to_bytes(&self) -> [u8; FOOTER_BYTES] {
        let mut b = [0u8; FOOTER_BYTES];
        b[off::COOKIE..off::COOKIE + 8].copy_from_slice(&self.cookie);
        BigEndian::write_u32(&mut b[off::FEATURES..], self.features);
        BigEndian::write_u32(&mut b[off::VERSION..], self.file_format_version);
        BigEndian::write_u64(&mut b[off::DATA_OFFSET..], self.data_offset);
        BigEndian::write_u32(&mut b[off::TIMESTAMP..], self.timestamp);
        b[off::CREATOR_APP..off::CREATOR_APP + 4].copy_from_slice(&self.creator_application);
        BigEndian::write_u32(&mut b[off::CREATOR_VERSION..], self.creator_version);
        b[off::CREATOR_HOST_OS..off::CREATOR_HOST_OS + 4].copy_from_slice(&self.creator_host_os);
        BigEndian::write_u64(&mut b[off::ORIGINAL_SIZE..], self.original_size);
        BigEndian::write_u64(&mut b[off::CURRENT_SIZE..], self.current_size);
        BigEndian::write_u16(&mut b[off::CYLINDERS..], self.geometry.cylinders);
        b[off::HEADS] = self.geometry.heads;
        b[off::SECTORS_PER_TRACK] = self.geometry.sectors_per_track;
        BigEndian::write_u32(&mut b[off::DISK_TYPE..], self.disk_type);
        BigEndian::write_u32(&mut b[off::CHECKSUM..], self.checksum);
        b[off::UNIQUE_ID..off::UNIQUE_ID + 16].copy_from_slice(&self.unique_id);
        b[off::SAVED_STATE] = self.saved_state;
        b
    }

    /// Sets `checksum` to the checksum of the other fields.
    pub fn seal(&mut self) {
        self.checksum = 0;
        self.checksum = vhd_checksum(&self.to_bytes());
    }

    /// Parses 512 footer bytes (no validation).
    pub fn parse(b: &[u8; FOOTER_BYTES]) -> Footer {
        let four = |at: usize| [b[at], b[at + 1], b[at + 2], b[at + 3]];
        let mut cookie = [0u8; 8];
        cookie.copy_from_slice(&b[off::COOKIE..off::COOKIE + 8]);
        let mut unique_id = [0u8; 16];
        unique_id.copy_from_slice(&b[off::UNIQUE_ID..off::UNIQUE_ID + 16]);
        Footer {
            cookie,
            features: BigEndian::read_u32(&b[off::FEATURES..]),
            file_format_version: BigEndian::read_u32(&b[off::VERSION..]),
            data_offset: BigEndian::read_u64(&b[off::DATA_OFFSET..]),
            timestamp: BigEndian::read_u32(&b[off::TIMESTAMP..]),
            creator_application: four(off::CREATOR_APP),
            creator_version: BigEndian::read_u32(&b[off::CREATOR_VERSION..]),
            creator_host_os: four(off::CREATOR_HOST_OS),
            original_size: BigEndian::read_u64(&b[off::ORIGINAL_SIZE..]),
            current_size: BigEndian::read_u64(&b[off::CURRENT_SIZE..]),
            geometry: Geometry {
                cylinders: BigEndian::read_u16(&b[off::CYLINDERS..]),
                heads: b[off::HEADS],
                sectors_per_track: b[off::SECTORS_PER_TRACK],
            },
            disk_type: BigEndian::read_u32(&b[off::DISK_TYPE..]),
            checksum: BigEndian::read_u32(&b[off::CHECKSUM..]),
            unique_id,
            saved_state: b[off::SAVED_STATE],
        }
    }

    /// qemu's `vpc_ignore_current_size`: whether the creator is one whose
    /// virtual size is the CHS product (Virtual PC, old qemu) rather than
    /// `current_size` (Hyper-V "win ", "qem2", Disk2vhd "d2v ", XenConverter
    /// "CTXS", XenServer "tap\0").
    pub fn size_from_geometry(&self) -> bool {
        const CURRENT_SIZE_CREATORS: [&[u8; 4]; 5] =
            [b"win ", CREATOR_QEMU_FORCE_SIZE, b"d2v ", b"CTXS", b"tap\0"];
        !CURRENT_SIZE_CREATORS.contains(&&self.creator_application)
    }
}

/// The dynamic disk header (at the footer's `data_offset`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicHeader {
    /// Offset 0: "cxsparse".
    pub cookie: [u8; 8],
    /// Offset 8: next structure; "currently unused by existing formats and
    /// should be set to 0xFFFFFFFF" (qemu sets all 64 bits).
    pub data_offset: u64,
    /// Offset 16: "absolute byte offset of the Block Allocation Table
    /// (BAT) in the file".
    pub table_offset: u64,
    /// Offset 24: 0x00010000.
    pub header_version: u32,
    /// Offset 28: "the maximum entries present in the BAT. This should be
    /// equal to the number of blocks in the disk (that is, the disk size
    /// divided by the block size)."
    pub max_table_entries: u32,
    /// Offset 32: "the number of bytes in each data block" — a power of
    /// two; 2 MiB by default. Each block is preceded by a sector bitmap.
    pub block_size: u32,
    /// Offset 36: one's complement checksum of the header.
    pub checksum: u32,
    // Parent fields (differencing disks only) are zero in what qemu writes.
}

impl DynamicHeader {
    /// The header qemu writes for a disk of `max_table_entries` blocks.
    pub fn new(max_table_entries: u32) -> Self {
        let mut h = DynamicHeader {
            cookie: *DYNAMIC_COOKIE,
            data_offset: NO_DATA_OFFSET,
            table_offset: BAT_OFFSET,
            header_version: VHD_VERSION_1_0,
            max_table_entries,
            block_size: VHD_BLOCK_SIZE,
            checksum: 0,
        };
        h.checksum = vhd_checksum(&h.to_bytes());
        h
    }

    /// The 1024 header bytes.
    pub fn to_bytes(&self) -> [u8; DYNAMIC_HEADER_BYTES] {
        let mut b = [0u8; DYNAMIC_HEADER_BYTES];
        b[off::DYN_COOKIE..off::DYN_COOKIE + 8].copy_from_slice(&self.cookie);
        BigEndian::write_u64(&mut b[off::DYN_DATA_OFFSET..], self.data_offset);
        BigEndian::write_u64(&mut b[off::DYN_TABLE_OFFSET..], self.table_offset);
        BigEndian::write_u32(&mut b[off::DYN_VERSION..], self.header_version);
        BigEndian::write_u32(&mut b[off::DYN_MAX_TABLE_ENTRIES..], self.max_table_entries);
        BigEndian::write_u32(&mut b[off::DYN_BLOCK_SIZE..], self.block_size);
        BigEndian::write_u32(&mut b[off::DYN_CHECKSUM..], self.checksum);
        b
    }

    /// Parses the first bytes of a dynamic header (no validation); only
    /// the fixed part up to the checksum is needed.
    pub fn parse(b: &[u8; DYNAMIC_HEADER_PREFIX]) -> Self {
        let mut cookie = [0u8; 8];
        cookie.copy_from_slice(&b[off::DYN_COOKIE..off::DYN_COOKIE + 8]);
        DynamicHeader {
            cookie,
            data_offset: BigEndian::read_u64(&b[off::DYN_DATA_OFFSET..]),
            table_offset: BigEndian::read_u64(&b[off::DYN_TABLE_OFFSET..]),
            header_version: BigEndian::read_u32(&b[off::DYN_VERSION..]),
            max_table_entries: BigEndian::read_u32(&b[off::DYN_MAX_TABLE_ENTRIES..]),
            block_size: BigEndian::read_u32(&b[off::DYN_BLOCK_SIZE..]),
            checksum: BigEndian::read_u32(&b[off::DYN_CHECKSUM..]),
        }
    }
}

/// How many leading bytes of the dynamic header the reader parses.
pub const DYNAMIC_HEADER_PREFIX: usize = 40;

/// True when `head` starts with a footer copy (how qemu probes vpc: only
/// dynamic and differencing disks have one at offset 0).
pub fn is_vpc(head: &[u8]) -> bool {
    head.starts_with(VHD_COOKIE)
}
