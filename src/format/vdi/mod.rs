//! VDI: VirtualBox's disk image format, as qemu-img writes and reads it.
//!
//! A new image is the 512-byte header ([`header::VdiHeader`]), the block
//! map at 0x200 (one little-endian u32 per 1 MiB block, padded with zeros
//! to a whole sector), then the data blocks from `offset_data`.
//! Dynamic images map every block to [`header::VDI_UNALLOCATED`] and end
//! after the map; `static=on` maps block i to data block i and extends the
//! file (sparse) to hold all of them.

pub mod check;
pub mod header;
pub mod map;

use crate::error::{Error, Result};
use crate::format::create_ctx::{CreateContext, Prealloc};
use crate::format::raw::round_to_sector;
use crate::image::HostFile;
use crate::options::{OptDesc, OptType, SIZE_OPTION};
use crate::qapi::ImageInfo;
use header::{
    HEADER_BYTES, VDI_BLOCK_SIZE, VDI_BLOCKS_IN_IMAGE_MAX, VDI_BMAP_OFFSET, VDI_DISK_SIZE_MAX,
    VDI_SECTOR_SIZE, VDI_UNALLOCATED, VDI_VERSION_1_1, VdiHeader, guid_from_rfc4122,
};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub use header::{VDI_SIGNATURE, is_vdi};

/// vdi's creation options, in qemu's print order.
pub const CREATE_OPTIONS: &[OptDesc] = &[
    SIZE_OPTION,
    OptDesc::new("static", OptType::Bool, "VDI static (pre-allocated) image").with_default("off"),
];

/// The block map is written in pieces of at most this many bytes.
const BMAP_CHUNK: usize = 1 << 20;

/// Creates a vdi image exactly as qemu-img does (byte for byte, except the
/// two random UUIDs, which `--reproducible` derives from the arguments).
///
/// `preallocation` belongs to the file protocol below vdi: qemu-img
/// accepts off, falloc and full and creates the file empty before vdi
/// writes into it, so it changes nothing; `metadata` is refused. Only
/// `static=on` preallocates (the block map, and the file's length).
pub fn create(ctx: &CreateContext) -> Result<()> {
    ctx.preallocation(&[Prealloc::Off, Prealloc::Falloc, Prealloc::Full])?;
    let is_static = ctx.flag("static", false);
    let size = round_to_sector(ctx.size);
    if size > VDI_DISK_SIZE_MAX {
        return Err(ctx.usage(format!(
            "Unsupported VDI image size (size is 0x{size:x}, max supported is 0x{VDI_DISK_SIZE_MAX:x})"
        )));
    }
    // At most VDI_BLOCKS_IN_IMAGE_MAX, checked just above.
    let blocks = size.div_ceil(u64::from(VDI_BLOCK_SIZE)) as u32;
    let bmap_bytes = round_to_sector(u64::from(blocks) * 4) as u32;
    let mut hdr = VdiHeader::new(size, blocks, bmap_bytes, is_static);
    hdr.uuid_image = guid_from_rfc4122(creation_uuid(ctx, "vdi-uuid-image"));
    hdr.uuid_last_snap = guid_from_rfc4122(creation_uuid(ctx, "vdi-uuid-last-snap"));

    let path = ctx.path();
    let file = ctx.create_file(path)?;
    let write = |buf: &[u8], at: u64| {
        file.write_all_at(buf, at)
            .map_err(|e| Error::io(format!("{}: Could not write", path.display()), e))
    };
    write(&hdr.to_bytes(), 0)?;

    // The block map, in whole sectors: entries, then zero padding.
    let mut chunk = Vec::with_capacity(BMAP_CHUNK.min(bmap_bytes as usize));
    let mut at = u64::from(VDI_BMAP_OFFSET);
    for i in 0..bmap_bytes / 4 {
        let entry = match (i < blocks, is_static) {
            (false, _) => 0,
            (true, true) => i,
            (true, false) => VDI_UNALLOCATED,
        };
        chunk.extend_from_slice(&entry.to_le_bytes());
        if chunk.len() == BMAP_CHUNK {
            write(&chunk, at)?;
            at += chunk.len() as u64;
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        write(&chunk, at)?;
    }
    if is_static {
        let end = u64::from(hdr.offset_data) + u64::from(blocks) * u64::from(VDI_BLOCK_SIZE);
        file.set_len(end).map_err(|e| {
            // Beyond what the file system allows: qemu-img's message.
            if e.raw_os_error() == Some(libc::EFBIG) || e.raw_os_error() == Some(libc::EINVAL) {
                ctx.failed("The image size is too large for file format 'vdi'")
            } else {
                ctx.failed(format!(
                    "Failed to statically allocate file: {}",
                    crate::error::describe_io(&e)
                ))
            }
        })?;
    }
    Ok(())
}

/// A UUID for a new image's `purpose` field, in RFC 4122 byte order:
/// random (version 4) like qemu's, or with `--reproducible` derived from
/// the creation arguments. Shared by vdi and vpc.
pub(crate) fn creation_uuid(ctx: &CreateContext, purpose: &str) -> [u8; 16] {
    if ctx.reproducible {
        crate::reproducible::derived_uuid(ctx.size, &ctx.options.formatting_text(), purpose)
    } else {
        random_uuid_v4()
    }
}

/// A random version 4 UUID from the kernel's random source.
fn random_uuid_v4() -> [u8; 16] {
    let mut u = [0u8; 16];
    fill_random(&mut u);
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

/// Fills `buf` from getrandom(2), falling back to /dev/urandom and, if
/// both fail, to a hash of the clock and process id (a UUID is an
/// identifier here, not a secret).
fn fill_random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe a valid, writable slice.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    if filled == buf.len() {
        return;
    }
    if let Ok(f) = File::open("/dev/urandom")
        && f.read_exact_at(buf, 0).is_ok()
    {
        return;
    }
    use sha2::{Digest, Sha256};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let digest = Sha256::new()
        .chain_update(now.to_le_bytes())
        .chain_update(std::process::id().to_le_bytes())
        .finalize();
    for (b, d) in buf.iter_mut().zip(digest.iter().cycle()) {
        *b = *d;
    }
}

/// Reads and checks the header of the vdi image at `path` as qemu's vdi
/// driver does when it opens an image, with qemu's messages. Every field is
/// untrusted; nothing is allocated or looped over by a header field (the
/// block map, which qemu loads whole, is not needed here).
pub fn read_header(path: &Path) -> Result<VdiHeader> {
    let mut buf = [0u8; HEADER_BYTES];
    HostFile::open_path(path)?.read_at(0, &mut buf)?;
    let mut h = VdiHeader::parse(&buf);
    if h.disk_size > VDI_DISK_SIZE_MAX {
        return Err(Error::image_at(
            path,
            format!(
                "Unsupported VDI image size (size is 0x{:x}, max supported is 0x{VDI_DISK_SIZE_MAX:x})",
                h.disk_size
            ),
        ));
    }
    // "VBoxManage convertfromraw can create images with odd disk sizes":
    // accepted, rounded up to a sector (cannot overflow: bounded above).
    h.disk_size = round_to_sector(h.disk_size);
    let unsupported =
        |what: String| Error::image_at(path, format!("unsupported VDI image ({what})"));
    if h.signature != VDI_SIGNATURE {
        return Err(Error::image_at(
            path,
            format!(
                "Image not in VDI format (bad signature {:08x})",
                h.signature
            ),
        ));
    }
    if h.version != VDI_VERSION_1_1 {
        return Err(unsupported(format!(
            "version {}.{}",
            h.version >> 16,
            h.version & 0xffff
        )));
    }
    if !h.offset_bmap.is_multiple_of(VDI_SECTOR_SIZE) {
        return Err(unsupported(format!(
            "unaligned block map offset 0x{:x}",
            h.offset_bmap
        )));
    }
    if !h.offset_data.is_multiple_of(VDI_SECTOR_SIZE) {
        return Err(unsupported(format!(
            "unaligned data offset 0x{:x}",
            h.offset_data
        )));
    }
    if h.sector_size != VDI_SECTOR_SIZE {
        return Err(unsupported(format!(
            "sector size {} is not {VDI_SECTOR_SIZE}",
            h.sector_size
        )));
    }
    if h.block_size != VDI_BLOCK_SIZE {
        return Err(unsupported(format!(
            "block size {} is not {VDI_BLOCK_SIZE}",
            h.block_size
        )));
    }
    let room = u64::from(h.blocks_in_image) * u64::from(h.block_size);
    if h.disk_size > room {
        return Err(unsupported(format!(
            "disk size {}, image bitmap has room for {room}",
            h.disk_size
        )));
    }
    if h.uuid_link != [0; 16] {
        return Err(unsupported("non-NULL link UUID".to_string()));
    }
    if h.uuid_parent != [0; 16] {
        return Err(unsupported("non-NULL parent UUID".to_string()));
    }
    if h.blocks_in_image > VDI_BLOCKS_IN_IMAGE_MAX {
        return Err(unsupported(format!(
            "too many blocks {}, max is {VDI_BLOCKS_IN_IMAGE_MAX}",
            h.blocks_in_image
        )));
    }
    Ok(h)
}

/// What `qemu-img info` reports about the vdi image at `path` (the format
/// level: the info layer adds the file name, allocation and `file` child).
pub fn inspect(path: &Path) -> Result<ImageInfo> {
    let h = read_header(path)?;
    Ok(ImageInfo {
        filename: path.display().to_string(),
        format: "vdi".to_string(),
        virtual_size: h.disk_size,
        cluster_size: Some(u64::from(h.block_size)),
        dirty_flag: Some(false),
        ..ImageInfo::default()
    })
}
