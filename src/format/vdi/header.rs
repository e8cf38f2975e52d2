//! The VDI header (VirtualBox `VDICore.h`, "VDIHEADER1PLUS" of version
//! 1.1), as qemu writes it. All integers are little-endian; one definition
//! used by the writer and the reader.
//!
//! Layout of the 512-byte pre-header + header that qemu writes:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0x000 | 64 | text ("<<< QEMU VM Virtual Disk Image >>>\n") |
//! | 0x040 | 4 | signature 0xbeda107f |
//! | 0x044 | 4 | version (0x00010001 = 1.1) |
//! | 0x048 | 4 | header_size (0x180: the header after the pre-header) |
//! | 0x04c | 4 | image_type (1 dynamic, 2 static) |
//! | 0x050 | 4 | image_flags |
//! | 0x054 | 256 | description |
//! | 0x154 | 4 | offset_bmap (block map offset) |
//! | 0x158 | 4 | offset_data (first data block offset) |
//! | 0x15c | 12 | legacy geometry: cylinders, heads, sectors |
//! | 0x168 | 4 | sector_size (512) |
//! | 0x16c | 4 | unused |
//! | 0x170 | 8 | disk_size (bytes) |
//! | 0x178 | 4 | block_size (1 MiB) |
//! | 0x17c | 4 | block_extra |
//! | 0x180 | 4 | blocks_in_image |
//! | 0x184 | 4 | blocks_allocated |
//! | 0x188 | 16 | uuid_image |
//! | 0x198 | 16 | uuid_last_snap |
//! | 0x1a8 | 16 | uuid_link |
//! | 0x1b8 | 16 | uuid_parent |
//! | 0x1c8 | 56 | unused |

use byteorder::{ByteOrder, LittleEndian};

/// Size of the pre-header plus header, and of what qemu writes at offset 0.
pub const HEADER_BYTES: usize = 512;
/// The text qemu puts in the pre-header ("The value does not matter", say
/// qemu's sources; VirtualBox writes its own product name there).
pub const VDI_TEXT: &[u8] = b"<<< QEMU VM Virtual Disk Image >>>\n";
/// Length of the text field.
pub const TEXT_LEN: usize = 0x40;
/// The image signature at offset 0x40.
pub const VDI_SIGNATURE: u32 = 0xbeda_107f;
/// Version 1.1 (major in the high 16 bits).
pub const VDI_VERSION_1_1: u32 = 0x0001_0001;
/// `header_size` qemu writes (0x180): the length of VirtualBox's
/// "VDIHEADER1PLUS", the part after the text, signature and version.
pub const VDI_HEADER_SIZE: u32 = 0x180;
/// `image_type`: "normal" dynamically growing image.
pub const VDI_TYPE_DYNAMIC: u32 = 1;
/// `image_type`: fixed (preallocated, "static") image.
pub const VDI_TYPE_STATIC: u32 = 2;
/// Where qemu puts the block map: right after the header.
pub const VDI_BMAP_OFFSET: u32 = 0x200;
/// The only sector size VDI (and qemu) support.
pub const VDI_SECTOR_SIZE: u32 = 512;
/// The block size qemu writes and the only one it reads (1 MiB).
pub const VDI_BLOCK_SIZE: u32 = 1 << 20;
/// Block map entry of a block never allocated ("semantically arbitrary
/// content"; read as zeros).
pub const VDI_UNALLOCATED: u32 = 0xffff_ffff;
/// qemu's `VDI_BLOCKS_IN_IMAGE_MAX`: qemu reads and writes the block map
/// in one operation, so the map, rounded up to a sector, must stay within
/// `INT_MAX` bytes: (2^31 - 512) / 4 = 0x1fffff80 blocks.
pub const VDI_BLOCKS_IN_IMAGE_MAX: u32 = ((1u32 << 31) - VDI_SECTOR_SIZE) / 4;
/// The largest disk qemu creates or opens: max blocks × 1 MiB.
pub const VDI_DISK_SIZE_MAX: u64 = VDI_BLOCKS_IN_IMAGE_MAX as u64 * VDI_BLOCK_SIZE as u64;

mod off {
    pub const SIGNATURE: usize = 0x40;
    pub const VERSION: usize = 0x44;
    pub const HEADER_SIZE: usize = 0x48;
    pub const IMAGE_TYPE: usize = 0x4c;
    pub const IMAGE_FLAGS: usize = 0x50;
    pub const DESCRIPTION: usize = 0x54;
    pub const OFFSET_BMAP: usize = 0x154;
    pub const OFFSET_DATA: usize = 0x158;
    pub const CYLINDERS: usize = 0x15c;
    pub const HEADS: usize = 0x160;
    pub const SECTORS: usize = 0x164;
    pub const SECTOR_SIZE: usize = 0x168;
    pub const DISK_SIZE: usize = 0x170;
    pub const BLOCK_SIZE: usize = 0x178;
    pub const BLOCK_EXTRA: usize = 0x17c;
    pub const BLOCKS_IN_IMAGE: usize = 0x180;
    pub const BLOCKS_ALLOCATED: usize = 0x184;
    pub const UUID_IMAGE: usize = 0x188;
    pub const UUID_LAST_SNAP: usize = 0x198;
    pub const UUID_LINK: usize = 0x1a8;
    pub const UUID_PARENT: usize = 0x1b8;
}

/// Length of the description field.
const DESCRIPTION_LEN: usize = 256;

/// The VDI header. UUIDs are kept as stored on disk: in Microsoft GUID byte
/// order (the first three groups little-endian), see [`guid_from_rfc4122`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VdiHeader {
    /// Offset 0: free text, NUL padded.
    pub text: [u8; TEXT_LEN],
    /// Offset 0x40: must be [`VDI_SIGNATURE`].
    pub signature: u32,
    /// Offset 0x44: major << 16 | minor; qemu handles only 1.1.
    pub version: u32,
    /// Offset 0x48: size of the header that follows the pre-header.
    pub header_size: u32,
    /// Offset 0x4c: 1 dynamic, 2 static (fixed).
    pub image_type: u32,
    /// Offset 0x50: image flags (qemu writes 0).
    pub image_flags: u32,
    /// Offset 0x54: description, NUL padded.
    pub description: [u8; DESCRIPTION_LEN],
    /// Offset 0x154: byte offset of the block map; qemu requires it to be
    /// sector aligned.
    pub offset_bmap: u32,
    /// Offset 0x158: byte offset of block 0 of the data; qemu requires it
    /// to be sector aligned.
    pub offset_data: u32,
    /// Offset 0x15c: legacy geometry, "unused here" (qemu writes 0).
    pub cylinders: u32,
    /// Offset 0x160: legacy geometry heads.
    pub heads: u32,
    /// Offset 0x164: legacy geometry sectors.
    pub sectors: u32,
    /// Offset 0x168: bytes per sector; must be 512.
    pub sector_size: u32,
    /// Offset 0x170: the virtual disk size in bytes ("VBoxManage
    /// convertfromraw can create images with odd disk sizes": qemu rounds
    /// them up to a sector when reading).
    pub disk_size: u64,
    /// Offset 0x178: block (qemu: cluster) size; qemu supports only 1 MiB.
    pub block_size: u32,
    /// Offset 0x17c: per-block extra data size (unused by qemu).
    pub block_extra: u32,
    /// Offset 0x180: number of entries of the block map.
    pub blocks_in_image: u32,
    /// Offset 0x184: number of allocated blocks.
    pub blocks_allocated: u32,
    /// Offset 0x188: this image's UUID.
    pub uuid_image: [u8; 16],
    /// Offset 0x198: UUID of the last snapshot.
    pub uuid_last_snap: [u8; 16],
    /// Offset 0x1a8: link UUID; qemu refuses images where it is not null.
    pub uuid_link: [u8; 16],
    /// Offset 0x1b8: parent UUID (differencing images); qemu refuses images
    /// where it is not null.
    pub uuid_parent: [u8; 16],
}

impl VdiHeader {
    /// A new header as qemu writes it for an image of `disk_size` bytes in
    /// `blocks` blocks.
    pub fn new(disk_size: u64, blocks: u32, bmap_bytes: u32, is_static: bool) -> Self {
        let mut text = [0u8; TEXT_LEN];
        text[..VDI_TEXT.len()].copy_from_slice(VDI_TEXT);
        VdiHeader {
            text,
            signature: VDI_SIGNATURE,
            version: VDI_VERSION_1_1,
            header_size: VDI_HEADER_SIZE,
            image_type: if is_static {
                VDI_TYPE_STATIC
            } else {
                VDI_TYPE_DYNAMIC
            },
            image_flags: 0,
            description: [0; DESCRIPTION_LEN],
            offset_bmap: VDI_BMAP_OFFSET,
            offset_data: VDI_BMAP_OFFSET + bmap_bytes,
            cylinders: 0,
            heads: 0,
            sectors: 0,
            sector_size: VDI_SECTOR_SIZE,
            disk_size,
            block_size: VDI_BLOCK_SIZE,
            block_extra: 0,
            blocks_in_image: blocks,
            blocks_allocated: if is_static { blocks } else { 0 },
            uuid_image: [0; 16],
            uuid_last_snap: [0; 16],
            uuid_link: [0; 16],
            uuid_parent: [0; 16],
        }
    }

    /// The 512 bytes qemu writes at offset 0.
    pub fn to_bytes(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[..TEXT_LEN].copy_from_slice(&self.text);
        let w32 = |b: &mut [u8; HEADER_BYTES], at: usize, v: u32| {
            LittleEndian::write_u32(&mut b[at..at + 4], v)
        };
        w32(&mut b, off::SIGNATURE, self.signature);
        w32(&mut b, off::VERSION, self.version);
        w32(&mut b, off::HEADER_SIZE, self.header_size);
        w32(&mut b, off::IMAGE_TYPE, self.image_type);
        w32(&mut b, off::IMAGE_FLAGS, self.image_flags);
        b[off::DESCRIPTION..off::DESCRIPTION + DESCRIPTION_LEN].copy_from_slice(&self.description);
        w32(&mut b, off::OFFSET_BMAP, self.offset_bmap);
        w32(&mut b, off::OFFSET_DATA, self.offset_data);
        w32(&mut b, off::CYLINDERS, self.cylinders);
        w32(&mut b, off::HEADS, self.heads);
        w32(&mut b, off::SECTORS, self.sectors);
        w32(&mut b, off::SECTOR_SIZE, self.sector_size);
        LittleEndian::write_u64(&mut b[off::DISK_SIZE..off::DISK_SIZE + 8], self.disk_size);
        w32(&mut b, off::BLOCK_SIZE, self.block_size);
        w32(&mut b, off::BLOCK_EXTRA, self.block_extra);
        w32(&mut b, off::BLOCKS_IN_IMAGE, self.blocks_in_image);
        w32(&mut b, off::BLOCKS_ALLOCATED, self.blocks_allocated);
        b[off::UUID_IMAGE..off::UUID_IMAGE + 16].copy_from_slice(&self.uuid_image);
        b[off::UUID_LAST_SNAP..off::UUID_LAST_SNAP + 16].copy_from_slice(&self.uuid_last_snap);
        b[off::UUID_LINK..off::UUID_LINK + 16].copy_from_slice(&self.uuid_link);
        b[off::UUID_PARENT..off::UUID_PARENT + 16].copy_from_slice(&self.uuid_parent);
        b
    }

    /// Parses the first 512 bytes of a file (no validation: see
    /// `inspect`).
    pub fn parse(b: &[u8; HEADER_BYTES]) -> Self {
        let r32 = |at: usize| LittleEndian::read_u32(&b[at..at + 4]);
        let uuid = |at: usize| {
            let mut u = [0u8; 16];
            u.copy_from_slice(&b[at..at + 16]);
            u
        };
        let mut text = [0u8; TEXT_LEN];
        text.copy_from_slice(&b[..TEXT_LEN]);
        let mut description = [0u8; DESCRIPTION_LEN];
        description.copy_from_slice(&b[off::DESCRIPTION..off::DESCRIPTION + DESCRIPTION_LEN]);
        VdiHeader {
            text,
            signature: r32(off::SIGNATURE),
            version: r32(off::VERSION),
            header_size: r32(off::HEADER_SIZE),
            image_type: r32(off::IMAGE_TYPE),
            image_flags: r32(off::IMAGE_FLAGS),
            description,
            offset_bmap: r32(off::OFFSET_BMAP),
            offset_data: r32(off::OFFSET_DATA),
            cylinders: r32(off::CYLINDERS),
            heads: r32(off::HEADS),
            sectors: r32(off::SECTORS),
            sector_size: r32(off::SECTOR_SIZE),
            disk_size: LittleEndian::read_u64(&b[off::DISK_SIZE..off::DISK_SIZE + 8]),
            block_size: r32(off::BLOCK_SIZE),
            block_extra: r32(off::BLOCK_EXTRA),
            blocks_in_image: r32(off::BLOCKS_IN_IMAGE),
            blocks_allocated: r32(off::BLOCKS_ALLOCATED),
            uuid_image: uuid(off::UUID_IMAGE),
            uuid_last_snap: uuid(off::UUID_LAST_SNAP),
            uuid_link: uuid(off::UUID_LINK),
            uuid_parent: uuid(off::UUID_PARENT),
        }
    }
}

/// True when `head` could be a VDI header: qemu's probe wants the whole
/// 512-byte header and the signature.
pub fn is_vdi(head: &[u8]) -> bool {
    head.len() >= HEADER_BYTES
        && LittleEndian::read_u32(&head[off::SIGNATURE..off::SIGNATURE + 4]) == VDI_SIGNATURE
}

/// An RFC 4122 UUID (network byte order) in the byte order VirtualBox
/// stores it (IPRT / Microsoft GUID: the 32-bit and two 16-bit leading
/// groups little-endian). qemu converts the same way before writing.
pub fn guid_from_rfc4122(u: [u8; 16]) -> [u8; 16] {
    let mut g = u;
    g[0..4].reverse();
    g[4..6].reverse();
    g[6..8].reverse();
    g
}
