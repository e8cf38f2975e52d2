//! qcow (version 1): qemu's original copy-on-write format.
//!
//! A new image as qemu-img writes it: the 48-byte header, the backing
//! file name (if any) right after it, then, from the next multiple of 8,
//! the L1 table written as whole 512-byte sectors of zeros. Nothing else:
//! L2 tables and clusters are appended when data is written.

pub mod header;
pub mod map;

use crate::error::{Error, Result};
use crate::format::create_ctx::{CreateContext, Prealloc};
use crate::format::raw::{round_to_sector, write_zeros};
use crate::image::HostFile;
use crate::options::{OptDesc, OptType, SIZE_OPTION};
use crate::qapi::ImageInfo;
use header::{
    CLUSTER_BITS, CLUSTER_BITS_RANGE, CLUSTER_BITS_WITH_BACKING, CRYPT_AES, CRYPT_NONE,
    HEADER_BYTES, L1_ALIGNMENT, L2_BITS, L2_BITS_RANGE, L2_BITS_WITH_BACKING,
    MAX_BACKING_FILE_SIZE, QCOW_VERSION, QcowHeader,
};
use std::os::unix::fs::FileExt;
use std::path::Path;

pub use header::{QCOW_MAGIC, is_qcow};

/// qcow's creation options, in qemu's print order.
pub const CREATE_OPTIONS: &[OptDesc] = &[
    SIZE_OPTION,
    OptDesc::new("backing_file", OptType::Str, "File name of a base image"),
    OptDesc::new("backing_fmt", OptType::Str, "Format of the backing image"),
    OptDesc::new(
        "encryption",
        OptType::Bool,
        "Encrypt the image with format 'aes'. (Deprecated in favor of encrypt.format=aes)",
    ),
    OptDesc::new(
        "encrypt.format",
        OptType::Str,
        "Encrypt the image, format choices: 'aes'",
    ),
    OptDesc::new(
        "encrypt.key-secret",
        OptType::Str,
        "ID of the secret that provides the AES encryption key",
    ),
];

/// qemu's special backing file name for its vvfat driver: no name is
/// stored, but the image still gets the small clusters of an image with a
/// backing file.
const VVFAT_BACKING: &str = "fat:";

/// Above this many bytes of L1 table, the table's zeros are left to a
/// sparse file extension instead of being written (same bytes; qemu writes
/// them all, sector by sector, which for exabyte images never ends).
const L1_WRITE_LIMIT: u64 = 1 << 30;

/// Creates a qcow image exactly as qemu-img does (qcow has no random or
/// clock fields: byte-identical, `--reproducible` or not).
///
/// `preallocation` belongs to the file protocol below qcow: qemu-img
/// accepts off, falloc and full and creates the file empty before qcow
/// writes into it, so it changes nothing; `metadata` is refused. The
/// backing format is checked (by the generic layer) but not stored: qcow
/// has no field for it.
pub fn create(ctx: &CreateContext) -> Result<()> {
    ctx.preallocation(&[Prealloc::Off, Prealloc::Falloc, Prealloc::Full])?;
    let size = round_to_sector(ctx.size);
    if size == 0 {
        return Err(ctx.usage("Image size is too small, cannot be zero length"));
    }
    let backing = ctx.backing_file();
    let stored_backing = backing.filter(|b| *b != VVFAT_BACKING);
    let (cluster_bits, l2_bits) = if backing.is_some() {
        (CLUSTER_BITS_WITH_BACKING, L2_BITS_WITH_BACKING)
    } else {
        (CLUSTER_BITS, L2_BITS)
    };
    let name_len = stored_backing.map_or(0, str::len) as u64;
    let mut hdr = QcowHeader {
        magic: QCOW_MAGIC,
        version: QCOW_VERSION,
        size,
        cluster_bits,
        l2_bits,
        crypt_method: CRYPT_NONE,
        l1_table_offset: (HEADER_BYTES as u64 + name_len).next_multiple_of(L1_ALIGNMENT),
        ..QcowHeader::default()
    };
    if stored_backing.is_some() {
        hdr.backing_file_offset = HEADER_BYTES as u64;
        hdr.backing_file_size =
            u32::try_from(name_len).map_err(|_| ctx.usage("Backing file name too long"))?;
    }
    let l1_size = hdr
        .l1_size()
        .ok_or_else(|| ctx.usage("The image size is too large for file format 'qcow'"))?;
    let l1_bytes = round_to_sector(l1_size * 8);

    let path = ctx.path();
    let file = ctx.create_file(path)?;
    let mut head = hdr.to_bytes().to_vec();
    if let Some(name) = stored_backing {
        head.extend_from_slice(name.as_bytes());
    }
    file.write_all_at(&head, 0)
        .map_err(|e| Error::io(format!("{}: Could not write", path.display()), e))?;
    let l1_end = hdr.l1_table_offset + l1_bytes;
    if l1_bytes <= L1_WRITE_LIMIT {
        write_zeros(ctx, &file, path, hdr.l1_table_offset, l1_bytes)?;
    }
    // Covers the header padding when the L1 table is empty, and the large
    // L1 tables left sparse.
    file.set_len(l1_end.max(head.len() as u64))
        .map_err(|e| Error::io(format!("{}: Could not resize file", path.display()), e))?;
    Ok(())
}

/// What the reader learnt from a qcow image.
#[derive(Debug, Clone)]
pub struct QcowImage {
    pub header: QcowHeader,
    /// The backing file name as stored (cut at a NUL, as qemu does).
    pub backing_file: Option<String>,
}

/// Opens the qcow image at `path` as qemu's qcow driver does, with its
/// checks and messages. Every header field is untrusted; the L1 table
/// (which qemu loads) is not needed and not read.
pub fn read_image(path: &Path) -> Result<QcowImage> {
    let file = HostFile::open_path(path)?;
    let mut buf = [0u8; HEADER_BYTES];
    file.read_at(0, &mut buf)?;
    let h = QcowHeader::parse(&buf);
    if h.magic != QCOW_MAGIC {
        return Err(Error::image_at(path, "Image not in qcow format"));
    }
    if h.version != QCOW_VERSION {
        return Err(Error::image_at(
            path,
            format!(
                "qcow (v{QCOW_VERSION}) does not support qcow version {}{}",
                h.version,
                if h.version == 2 || h.version == 3 {
                    "\nTry the 'qcow2' driver instead."
                } else {
                    ""
                }
            ),
        ));
    }
    if h.size <= 1 {
        return Err(Error::image_at(
            path,
            "Image size is too small (must be at least 2 bytes)",
        ));
    }
    if !CLUSTER_BITS_RANGE.contains(&h.cluster_bits) {
        return Err(Error::image_at(
            path,
            "Cluster size must be between 512 and 64k",
        ));
    }
    if !L2_BITS_RANGE.contains(&h.l2_bits) {
        return Err(Error::image_at(
            path,
            "L2 table size must be between 512 and 64k",
        ));
    }
    if h.crypt_method != CRYPT_NONE && h.crypt_method != CRYPT_AES {
        return Err(Error::image_at(
            path,
            "invalid encryption method in qcow header",
        ));
    }
    match h.l1_size() {
        Some(n) if n <= (i32::MAX as u64) / 8 => {}
        _ => {
            return Err(Error::image_at(path, "Image too large"));
        }
    }
    let backing_file = if h.backing_file_offset != 0 {
        if h.backing_file_size > MAX_BACKING_FILE_SIZE {
            return Err(Error::image_at(path, "Backing file name too long"));
        }
        // Like qemu, bytes past the end of the file read as zeros.
        let name = file.read_vec(h.backing_file_offset, h.backing_file_size as usize)?;
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        Some(crate::name::from_bytes(&name[..end]))
    } else {
        None
    };
    Ok(QcowImage {
        header: h,
        backing_file,
    })
}

/// What `qemu-img info` reports about the qcow image at `path` (the
/// format level: the info layer adds the file name, allocation and `file`
/// child).
pub fn inspect(path: &Path) -> Result<ImageInfo> {
    let image = read_image(path)?;
    let h = &image.header;
    let image_name = crate::name::of_path(path);
    let full_backing = image
        .backing_file
        .as_deref()
        .filter(|b| !b.is_empty())
        .map(|b| crate::image::chain::full_backing_filename(&image_name, b));
    Ok(ImageInfo {
        filename: image_name,
        format: "qcow".to_string(),
        virtual_size: h.virtual_size(),
        cluster_size: Some(1u64 << h.cluster_bits),
        encrypted: (h.crypt_method == CRYPT_AES).then_some(true),
        dirty_flag: Some(false),
        backing_filename: image.backing_file.clone().filter(|b| !b.is_empty()),
        full_backing_filename: full_backing,
        ..ImageInfo::default()
    })
}
