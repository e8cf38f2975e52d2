//! Reading a vmdk image the way qemu opens it: a sparse extent (`KDMV`,
//! or the older `COWD`) or a text descriptor naming its extents, with
//! qemu's checks and messages, bounded against hostile files.
//!
//! Every header field is untrusted: sizes are checked before use, nothing
//! is allocated by a field's value (reads are at most 1 MiB), tables are
//! not loaded (info needs only the headers), and errors name the file and
//! the field.

use super::descriptor::{self, QuotedError, c_str, find_cid, find_quoted, parse_extent_lines};
use super::header::{
    FLAG_RGD, GD_AT_END, MAGIC, MARKER_END_OF_STREAM, MARKER_FOOTER, Marker, SECTOR_SIZE,
    SparseExtentHeader, VMDK3_MAGIC,
};
use crate::error::{Error, Result};
use crate::image::HostFile;
use crate::name::{escape, from_bytes, of_path, path_of};
use crate::qapi::{ChildInfo, FormatSpecific, ImageInfo, VmdkSpecific};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// qemu reads at most this much of a descriptor ("avoid unbounded
/// allocation").
const MAX_DESCRIPTOR_READ: u64 = (1 << 20) - 1;
/// The window in which qemu looks for `CID`, `parentCID` and
/// `parentFileNameHint` (20 sectors).
const DESC_WINDOW: u64 = 20 * SECTOR_SIZE;
/// Descriptor offset of a monolithic sparse extent (sector 1).
const EMBEDDED_DESC_OFFSET: u64 = 0x200;
/// qemu refuses grains above 1 GiB ("unrealistic").
const MAX_CLUSTER_SECTORS: u64 = 0x20_0000;
/// qemu refuses grain directories above 32 Mi entries.
const MAX_L1_SIZE: u64 = 32 * 1024 * 1024;
/// qemu refuses grain tables above 512 entries.
const MAX_GTES_PER_GT: u32 = 512;
/// The longest `createType` qemu reads (a 128-byte buffer).
const MAX_CREATE_TYPE: usize = 127;
/// The longest backing file name qemu keeps.
const MAX_BACKING_NAME: usize = 4095;
/// qemu's largest image: INT64_MAX rounded down to its 1 GiB alignment.
const MAX_LENGTH: u64 = (i64::MAX as u64) & !((1 << 30) - 1);

/// One opened extent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extent {
    /// The extent's file, as qemu names it (descriptor directory + name).
    pub filename: String,
    /// The descriptor's type word (`SPARSE`, `FLAT`...); None for the
    /// extent of a monolithic sparse file (qemu shows "").
    pub kind: Option<String>,
    /// Size in sectors.
    pub sectors: u64,
    /// Grain size in sectors, for sparse extents.
    pub cluster_sectors: Option<u64>,
    pub compressed: bool,
    /// True when the extent is the image file itself.
    pub is_image_file: bool,
}

/// An opened vmdk image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmdkImage {
    pub create_type: String,
    pub cid: u32,
    pub parent_cid: u32,
    /// `parentFileNameHint`, when present and not empty.
    pub parent_file_name_hint: Option<String>,
    pub extents: Vec<Extent>,
}

impl VmdkImage {
    /// The virtual size in bytes: the sum of the extents.
    pub fn virtual_size(&self) -> u64 {
        self.extents.iter().map(|e| e.sectors * SECTOR_SIZE).sum()
    }

    /// qemu's image cluster size: the first extent's grain when every
    /// extent has the same kind (flat, compressed, grain), none when the
    /// first is flat or they differ.
    pub fn cluster_size(&self) -> Option<u64> {
        let first = self.extents.first()?;
        let same = self.extents.iter().all(|e| {
            e.cluster_sectors.is_none() == first.cluster_sectors.is_none()
                && e.compressed == first.compressed
                && (e.cluster_sectors.is_none() || e.cluster_sectors == first.cluster_sectors)
        });
        if same {
            first.cluster_sectors.map(|c| c * SECTOR_SIZE)
        } else {
            None
        }
    }
}

/// qemu's message when the vmdk driver fails without one of its own (a
/// missing CID, a bad parentFileNameHint): the block layer's
/// `Could not open 'FILE': Invalid argument`.
fn invalid_argument(path: &Path) -> Error {
    Error::open_io(
        &of_path(path),
        std::io::Error::from_raw_os_error(libc::EINVAL),
    )
}

/// Reads `len` bytes at `offset`; past the end of the file reads as zeros
/// (as qemu's file driver does). `len` is bounded by the callers.
fn read_zero_filled(file: &HostFile, offset: u64, len: usize) -> Result<Vec<u8>> {
    file.read_vec(offset, len)
}

/// Opens a file for reading through [`HostFile`] (a FIFO named by a
/// hostile descriptor is refused, never waited on).
fn open(path: &Path) -> Result<HostFile> {
    HostFile::open_path(path)
}

/// qemu's `vmdk_read_desc`: the start of a file (at most 1 MiB), which
/// must be at least 4 bytes long.
fn read_head(o: &HostFile, path: &Path, offset: u64) -> Result<Vec<u8>> {
    read_start(o, path, offset, MAX_DESCRIPTOR_READ)
}

/// The first sector of a file (enough for a sparse header), with the same
/// size check as [`read_head`].
fn read_sector0(o: &HostFile, path: &Path) -> Result<Vec<u8>> {
    read_start(o, path, 0, SECTOR_SIZE)
}

fn read_start(o: &HostFile, path: &Path, offset: u64, max: u64) -> Result<Vec<u8>> {
    if o.len() < 4 {
        return Err(Error::image_at(
            path,
            "File is too small, not a valid image",
        ));
    }
    read_zero_filled(o, offset, o.len().min(max) as usize)
}

fn is_sparse_magic(head: &[u8]) -> bool {
    head.starts_with(&MAGIC) || head.starts_with(&VMDK3_MAGIC)
}

/// Opens the vmdk image at `path` and reads its structure.
pub fn inspect_image(path: &Path) -> Result<VmdkImage> {
    let o = open(path)?;
    let mut head = read_sector0(&o, path)?;
    let name = of_path(path);
    if !is_sparse_magic(&head) {
        head = read_head(&o, path, 0)?;
    }
    let (create_type, extents, desc_offset) = if is_sparse_magic(&head) {
        match open_sparse(&o, path, &name, &head, true)? {
            Sparse::Extent(e) => {
                // qemu names no create type for a bare COWD extent
                let ct = if head.starts_with(&VMDK3_MAGIC) {
                    ""
                } else if e.compressed {
                    "streamOptimized"
                } else {
                    "monolithicSparse"
                };
                (ct.to_string(), vec![e], EMBEDDED_DESC_OFFSET)
            }
            Sparse::Descriptor(text) => {
                let (ct, extents) = open_descriptor(path, &name, c_str(&text))?;
                (ct, extents, EMBEDDED_DESC_OFFSET)
            }
        }
    } else {
        let (ct, extents) = open_descriptor(path, &name, c_str(&head))?;
        (ct, extents, 0)
    };
    let total = extents
        .iter()
        .try_fold(0u64, |acc, e| acc.checked_add(e.sectors))
        .filter(|s| s.checked_mul(SECTOR_SIZE).is_some_and(|b| b <= MAX_LENGTH));
    if total.is_none() {
        return Err(Error::image_at(
            path,
            "Could not refresh total sector count: File too large",
        ));
    }
    let window = read_zero_filled(&o, desc_offset, DESC_WINDOW as usize)?;
    let parent_file_name_hint = match find_quoted(&window, b"parentFileNameHint", MAX_BACKING_NAME)
    {
        Ok([]) => None,
        Ok(v) => Some(from_bytes(v)),
        Err(QuotedError::Missing) => None,
        Err(QuotedError::Invalid) => {
            // qemu sets no message here: the open fails with EINVAL.
            return Err(invalid_argument(path));
        }
    };
    let cid_text = c_str(&window[..DESC_WINDOW as usize - 1]);
    let cid = find_cid(cid_text, false).ok_or_else(|| invalid_argument(path))?;
    let parent_cid = find_cid(cid_text, true).ok_or_else(|| invalid_argument(path))?;
    Ok(VmdkImage {
        create_type,
        cid,
        parent_cid,
        parent_file_name_hint,
        extents,
    })
}

enum Sparse {
    Extent(Extent),
    /// A sparse header with capacity 0 that points at a descriptor.
    Descriptor(Vec<u8>),
}

/// Opens a sparse extent whose first bytes are `head` (qemu's
/// `vmdk_open_sparse`). `top` allows the embedded-descriptor form.
fn open_sparse(o: &HostFile, path: &Path, name: &str, head: &[u8], top: bool) -> Result<Sparse> {
    let file_sectors = o.len().div_ceil(SECTOR_SIZE);
    if head.starts_with(&VMDK3_MAGIC) {
        let word = |i: usize| {
            let at = 4 + 4 * i;
            let mut b = [0u8; 4];
            if let Some(s) = head.get(at..at + 4) {
                b.copy_from_slice(s);
            }
            u32::from_le_bytes(b) as u64
        };
        let (disk_sectors, granularity, l1_size) = (word(2), word(3), word(5));
        check_extent(path, granularity, l1_size)?;
        return Ok(Sparse::Extent(Extent {
            filename: name.to_string(),
            kind: None,
            sectors: disk_sectors,
            cluster_sectors: Some(granularity),
            compressed: false,
            is_image_file: top,
        }));
    }
    if !head.starts_with(&MAGIC) {
        return Err(Error::image_at(path, "Image not in VMDK format"));
    }
    let mut h = SparseExtentHeader::parse(head);
    if h.capacity == 0 && h.desc_offset != 0 {
        if !top {
            return Err(Error::image_at(
                path,
                "a sparse extent that is itself a descriptor is not supported",
            ));
        }
        let offset = h.desc_offset.checked_mul(SECTOR_SIZE).ok_or_else(|| {
            Error::image_at(
                path,
                format!("descriptorOffset {} is invalid", h.desc_offset),
            )
        })?;
        return Ok(Sparse::Descriptor(read_head(o, path, offset)?));
    }
    if h.gd_offset == GD_AT_END {
        h = read_footer(o, path)?;
    }
    if h.version > 3 {
        return Err(Error::image_at(
            path,
            format!("Unsupported VMDK version {}", h.version),
        ));
    }
    if h.num_gtes_per_gt > MAX_GTES_PER_GT {
        return Err(Error::image_at(path, "L2 table size too big"));
    }
    let l1_entry_sectors = (h.num_gtes_per_gt as u64).wrapping_mul(h.granularity) as u32;
    if l1_entry_sectors == 0 {
        return Err(Error::image_at(path, "L1 entry size is invalid"));
    }
    let l1_size = (h.capacity.wrapping_add(l1_entry_sectors as u64 - 1) / l1_entry_sectors as u64)
        as u32 as u64;
    if file_sectors < h.grain_offset {
        return Err(Error::image_at(
            path,
            format!(
                "File truncated, expecting at least {} bytes",
                h.grain_offset.wrapping_mul(SECTOR_SIZE) as i64
            ),
        ));
    }
    check_extent(path, h.granularity, l1_size)?;
    let table_bytes = l1_size * 4;
    let mut tables = vec![("l1 table", h.gd_offset)];
    if h.flags & FLAG_RGD != 0 {
        tables.push(("l1 backup table", h.rgd_offset));
    }
    for (what, sector) in tables {
        // qemu shifts the sector number into a byte offset, dropping
        // the bits shifted out, and reads there.
        let offset = sector.wrapping_mul(SECTOR_SIZE);
        let fits = (offset as i64) >= 0
            && offset
                .checked_add(table_bytes)
                .is_some_and(|end| end <= MAX_LENGTH);
        if !fits {
            return Err(Error::image_at(
                path,
                format!(
                    "Could not read {what} from extent '{}': Input/output error",
                    escape(name)
                ),
            ));
        }
    }
    Ok(Sparse::Extent(Extent {
        filename: name.to_string(),
        kind: None,
        sectors: h.capacity,
        cluster_sectors: Some(h.granularity),
        compressed: h.compressed(),
        is_image_file: top,
    }))
}

/// qemu's `vmdk_add_extent` limits.
fn check_extent(path: &Path, cluster_sectors: u64, l1_size: u64) -> Result<()> {
    if cluster_sectors > MAX_CLUSTER_SECTORS {
        return Err(Error::image_at(
            path,
            "Invalid granularity, image may be corrupt",
        ));
    }
    if l1_size > MAX_L1_SIZE {
        return Err(Error::image_at(path, "L1 size too big"));
    }
    Ok(())
}

/// The footer of a stream whose header says [`GD_AT_END`]: footer marker,
/// footer (a second header), end-of-stream marker, in the last three
/// sectors.
fn read_footer(o: &HostFile, path: &Path) -> Result<SparseExtentHeader> {
    let end = o.len().div_ceil(SECTOR_SIZE) * SECTOR_SIZE;
    let start = end
        .checked_sub(3 * SECTOR_SIZE)
        .ok_or_else(|| Error::image_at(path, "Failed to read footer: file too short"))?;
    let b = read_zero_filled(o, start, 3 * SECTOR_SIZE as usize)?;
    let marker = |at: usize| {
        let mut m = [0u8; 16];
        m.copy_from_slice(&b[at..at + 16]);
        Marker::parse(&m)
    };
    let footer_marker = marker(0);
    let eos = marker(2 * SECTOR_SIZE as usize);
    let sector = SECTOR_SIZE as usize;
    if !b[sector..].starts_with(&MAGIC)
        || footer_marker.size != 0
        || footer_marker.kind != MARKER_FOOTER
        || eos.val != 0
        || eos.size != 0
        || eos.kind != MARKER_END_OF_STREAM
    {
        return Err(Error::image_at(path, "Invalid footer"));
    }
    Ok(SparseExtentHeader::parse(&b[sector..2 * sector]))
}

/// The directory part of a file name as qemu's `bdrv_dirname` gives it
/// (up to and including the last `/`).
fn dir_of(name: &str) -> &str {
    match name.rfind('/') {
        Some(i) => &name[..=i],
        None => "",
    }
}

/// qemu's `vmdk_open_desc_file`: checks `createType` and opens every
/// extent the descriptor names.
fn open_descriptor(path: &Path, name: &str, text: &[u8]) -> Result<(String, Vec<Extent>)> {
    let ct = find_quoted(text, b"createType", MAX_CREATE_TYPE)
        .map_err(|_| Error::image_at(path, "invalid VMDK image descriptor"))?;
    let ct = from_bytes(ct);
    const SUPPORTED: [&str; 6] = [
        "monolithicFlat",
        "vmfs",
        "vmfsSparse",
        "seSparse",
        "twoGbMaxExtentSparse",
        "twoGbMaxExtentFlat",
    ];
    if !SUPPORTED.contains(&ct.as_str()) {
        return Err(Error::image_at(
            path,
            format!("Unsupported image type '{}'", escape(&ct)),
        ));
    }
    let lines = parse_extent_lines(text).map_err(|e| match e {
        descriptor::ExtentLineError::Invalid(l) => {
            Error::image_at(path, format!("Invalid extent line: {}", escape(&l)))
        }
    })?;
    let dir = dir_of(name);
    let mut extents = Vec::with_capacity(lines.len().min(1024));
    for line in lines {
        let ext_name = if line.file.starts_with('/') {
            line.file.clone()
        } else {
            format!("{dir}{}", line.file)
        };
        let ext_path = &path_of(&ext_name);
        let in_extent = |e: Error| e.opening(name);
        let eo = open(ext_path).map_err(in_extent)?;
        let sectors = line.sectors as u64;
        let extent = match line.kind.as_str() {
            "FLAT" | "VMFS" => Extent {
                filename: ext_name.clone(),
                kind: Some(line.kind.clone()),
                sectors,
                cluster_sectors: None,
                compressed: false,
                is_image_file: false,
            },
            "SPARSE" | "VMFSSPARSE" => {
                let head = read_sector0(&eo, ext_path).map_err(in_extent)?;
                match open_sparse(&eo, ext_path, &ext_name, &head, false).map_err(in_extent)? {
                    Sparse::Extent(mut e) => {
                        e.kind = Some(line.kind.clone());
                        e
                    }
                    Sparse::Descriptor(_) => {
                        return Err(in_extent(Error::image_at(
                            ext_path,
                            "nested vmdk descriptor",
                        )));
                    }
                }
            }
            other => {
                return Err(in_extent(Error::image_at(
                    ext_path,
                    format!(
                        "Unsupported extent type '{}' (diskforge does not read it)",
                        escape(other)
                    ),
                )));
            }
        };
        extents.push(extent);
    }
    Ok((ct, extents))
}

/// `qemu-img info`'s view of the vmdk image at `path`: format-level
/// fields, the vmdk specific data and one child per extent file.
pub fn inspect(path: &Path) -> Result<ImageInfo> {
    let img = inspect_image(path)?;
    let name = of_path(path);
    let extents = img
        .extents
        .iter()
        .map(|e| ImageInfo {
            filename: e.filename.clone(),
            format: e.kind.clone().unwrap_or_default(),
            virtual_size: e.sectors * SECTOR_SIZE,
            cluster_size: e.cluster_sectors.map(|c| c * SECTOR_SIZE),
            compressed: e.compressed.then_some(true),
            ..ImageInfo::default()
        })
        .collect();
    let children = img
        .extents
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.is_image_file)
        .map(|(i, e)| ChildInfo {
            name: format!("extents.{i}"),
            info: ImageInfo {
                filename: e.filename.clone(),
                ..ImageInfo::default()
            },
        })
        .collect();
    // qemu's allocated size of a vmdk: the descriptor's (or monolithic
    // image's) own file plus every extent held in another file.
    let allocated = |p: &str| std::fs::metadata(path_of(p)).ok().map(|m| m.blocks() * 512);
    let actual_size = img
        .extents
        .iter()
        .filter(|e| !e.is_image_file)
        .try_fold(allocated(&name).unwrap_or(0), |sum, e| {
            allocated(&e.filename).map(|a| sum + a)
        });
    Ok(ImageInfo {
        filename: name.clone(),
        format: "vmdk".to_string(),
        virtual_size: img.virtual_size(),
        actual_size,
        cluster_size: img.cluster_size(),
        dirty_flag: Some(false),
        backing_filename: img.parent_file_name_hint.clone(),
        full_backing_filename: img
            .parent_file_name_hint
            .as_deref()
            .map(|h| crate::image::chain::full_backing_filename(&name, h)),
        backing_filename_format: img
            .parent_file_name_hint
            .as_ref()
            .map(|_| "vmdk".to_string()),
        format_specific: Some(FormatSpecific::Vmdk(VmdkSpecific {
            create_type: img.create_type,
            cid: img.cid,
            parent_cid: img.parent_cid,
            extents,
        })),
        children,
        ..ImageInfo::default()
    })
}
