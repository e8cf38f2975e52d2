//! VPC / VHD: Microsoft's Virtual Hard Disk format (qemu's `vpc` driver;
//! `vhd` on diskforge's command line).
//!
//! A dynamic disk as qemu-img writes it: a footer copy at 0, the dynamic
//! header at 0x200, the block allocation table (BAT) at 0x600 (one
//! big-endian u32 per 2 MiB block, all 0xFFFFFFFF, in whole sectors), then
//! the footer. A fixed disk: the raw data, then the footer.
//!
//! The virtual size is rounded up to what the CHS geometry can express
//! (1G → 1073995776), unless `force_size=on` or the disk is beyond the
//! largest geometry (65535 × 16 × 255 sectors).

pub mod footer;
pub mod map;

use crate::error::{Error, Result};
use crate::format::create_ctx::{CreateContext, Prealloc};
use crate::format::raw::round_to_sector;
use crate::image::HostFile;
use crate::options::{OptDesc, OptType, SIZE_OPTION};
use crate::qapi::ImageInfo;
use footer::{
    BAT_OFFSET, BAT_UNALLOCATED, CHS_MAX_GEOMETRY, CREATOR_HOST_WINDOWS, CREATOR_QEMU,
    CREATOR_QEMU_FORCE_SIZE, CREATOR_VERSION, DISK_TYPE_DYNAMIC, DISK_TYPE_FIXED, DYNAMIC_COOKIE,
    DYNAMIC_HEADER_BYTES, DYNAMIC_HEADER_OFFSET, DYNAMIC_HEADER_PREFIX, DynamicHeader,
    FEATURES_RESERVED, FOOTER_BYTES, Footer, Geometry, NO_DATA_OFFSET, VHD_BLOCK_SIZE,
    VHD_MAX_SECTORS, VHD_SECTOR_SIZE, VHD_TIMESTAMP_BASE, VHD_VERSION_1_0,
};
use std::os::unix::fs::FileExt;
use std::path::Path;

pub use footer::{VHD_COOKIE, is_vpc};

/// vpc's creation options, in qemu's print order.
pub const CREATE_OPTIONS: &[OptDesc] = &[
    SIZE_OPTION,
    OptDesc::new(
        "subformat",
        OptType::Str,
        "Type of virtual hard disk format. Supported formats are {dynamic (default) | fixed} ",
    ),
    OptDesc::new(
        "force_size",
        OptType::Bool,
        "Force disk size calculation to use the actual size specified, rather than using the nearest CHS-based calculation",
    ),
];

/// One MiB: Azure wants fixed VHDs whose virtual size is a multiple of it.
const MIB: u64 = 1 << 20;

/// What qemu's file driver writes at offset 0 when it grows an empty
/// file: one 4 KiB block of zeros (a sector if the file is smaller).
const FIRST_BLOCK_BYTES: u64 = 4096;

/// The two kinds of VHD qemu-img creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subformat {
    Dynamic,
    Fixed,
}

/// The size (in sectors) and geometry qemu gives a new disk of `size`
/// bytes (qemu's `calculate_rounded_image_size`): the smallest CHS
/// geometry that holds the size, searched upwards from the size; with
/// `force_size`, or when only the largest geometry holds it, the size
/// itself (at most 2040 GiB). `None` when the size is over that limit.
pub fn rounded_geometry(size: u64, force_size: bool) -> Option<(Geometry, u64)> {
    let geometry = if force_size {
        Geometry::MAX
    } else {
        let wanted = CHS_MAX_GEOMETRY.min(size / VHD_SECTOR_SIZE);
        let mut g = Geometry::default();
        let mut i = 0;
        while wanted > g.total_sectors() {
            g = Geometry::for_sectors(wanted + i);
            i += 1;
        }
        g
    };
    if geometry.total_sectors() == CHS_MAX_GEOMETRY {
        let sectors = size / VHD_SECTOR_SIZE;
        (sectors <= VHD_MAX_SECTORS).then_some((geometry, sectors))
    } else {
        Some((geometry, geometry.total_sectors()))
    }
}

/// Creates a vpc image exactly as qemu-img does (byte for byte, except the
/// timestamp and UUID, and so the checksum, which `--reproducible` makes
/// deterministic).
///
/// `preallocation` belongs to the file protocol below vpc: qemu-img accepts
/// off, falloc and full and creates the file empty before vpc writes into
/// it, so it changes nothing; `metadata` is refused.
pub fn create(ctx: &CreateContext) -> Result<()> {
    let subformat = match ctx.options.get_str("subformat") {
        None | Some("dynamic") => Subformat::Dynamic,
        Some("fixed") => Subformat::Fixed,
        Some(other) => {
            return Err(ctx.usage(format!(
                "Parameter 'subformat' does not accept value '{other}'"
            )));
        }
    };
    ctx.preallocation(&[Prealloc::Off, Prealloc::Falloc, Prealloc::Full])?;
    let force_size = ctx.flag("force_size", false);
    let too_large = || ctx.usage("The image size is too large for file format 'vpc'");

    // qemu rounds twice: once to pick the size, once more when writing.
    let mut size = round_to_sector(ctx.size);
    if !force_size {
        let (_, sectors) = rounded_geometry(size, false).ok_or_else(too_large)?;
        size = sectors * VHD_SECTOR_SIZE;
    }
    let (geometry, sectors) = rounded_geometry(size, force_size).ok_or_else(too_large)?;
    if size != sectors * VHD_SECTOR_SIZE {
        return Err(ctx.usage(format!(
            "The requested image size cannot be represented in CHS geometry (try size={} or force_size=on, which makes the image incompatible with Virtual PC)",
            sectors * VHD_SECTOR_SIZE
        )));
    }

    let mut footer = Footer {
        cookie: *VHD_COOKIE,
        features: FEATURES_RESERVED,
        file_format_version: VHD_VERSION_1_0,
        data_offset: match subformat {
            Subformat::Dynamic => DYNAMIC_HEADER_OFFSET,
            Subformat::Fixed => NO_DATA_OFFSET,
        },
        timestamp: creation_timestamp(ctx),
        creator_application: if force_size {
            *CREATOR_QEMU_FORCE_SIZE
        } else {
            *CREATOR_QEMU
        },
        creator_version: CREATOR_VERSION,
        creator_host_os: *CREATOR_HOST_WINDOWS,
        original_size: size,
        current_size: size,
        geometry,
        disk_type: match subformat {
            Subformat::Dynamic => DISK_TYPE_DYNAMIC,
            Subformat::Fixed => DISK_TYPE_FIXED,
        },
        checksum: 0,
        unique_id: crate::format::vdi::creation_uuid(ctx, "vpc-unique-id"),
        saved_state: 0,
    };
    footer.seal();

    let path = ctx.path();
    let file = ctx.create_file(path)?;
    let write = |buf: &[u8], at: u64| {
        file.write_all_at(buf, at)
            .map_err(|e| Error::io(format!("{}: Could not write", path.display()), e))
    };
    let footer_bytes = footer.to_bytes();
    match subformat {
        Subformat::Dynamic => {
            let blocks = sectors.div_ceil(u64::from(VHD_BLOCK_SIZE) / VHD_SECTOR_SIZE);
            // At most 0xff000000 / 4096 entries (the size limit above).
            let bat_bytes = round_to_sector(blocks * 4) as usize;
            let mut image = Vec::with_capacity(BAT_OFFSET as usize + bat_bytes + FOOTER_BYTES);
            image.extend_from_slice(&footer_bytes);
            image.extend_from_slice(&DynamicHeader::new(blocks as u32).to_bytes());
            image.resize(image.len() + bat_bytes, 0xff);
            image.extend_from_slice(&footer_bytes);
            write(&image, 0)?;
        }
        Subformat::Fixed => {
            file.set_len(size + FOOTER_BYTES as u64).map_err(|e| {
                if e.raw_os_error() == Some(libc::EFBIG) || e.raw_os_error() == Some(libc::EINVAL) {
                    // Beyond what the file system allows: qemu-img's message.
                    ctx.failed("The image size is too large for file format 'vpc'")
                } else {
                    Error::io(format!("{}: Could not resize file", path.display()), e)
                }
            })?;
            write(&footer_bytes, size)?;
            // qemu's file driver, growing an empty file, writes zeros over
            // its first block ("allocate_first_block"): same bytes, but the
            // allocation qemu-img info reports as actual-size.
            let first_block = if size + FOOTER_BYTES as u64 >= FIRST_BLOCK_BYTES {
                FIRST_BLOCK_BYTES
            } else {
                VHD_SECTOR_SIZE
            };
            // (A device instead had its first sector zeroed when opened.)
            if size >= first_block && !file.is_device() {
                write(&vec![0u8; first_block as usize], 0)?;
            }
            if !size.is_multiple_of(MIB) {
                warn_azure(ctx, size, force_size);
            }
        }
    }
    Ok(())
}

/// Advises (stderr, not an error) that a fixed VHD whose virtual size is
/// not a whole number of MiB is refused by Azure. qemu-img prints nothing
/// here, and callers such as Glance treat any stderr output as a failure,
/// so the advice is for a person only: printed when stderr is a terminal
/// and never with `-q` (the README and the man page carry it too).
fn warn_azure(ctx: &CreateContext, size: u64, force_size: bool) {
    use std::io::IsTerminal;
    if ctx.quiet || !std::io::stderr().is_terminal() {
        return;
    }
    let fix = if force_size {
        "give a size that is a whole number of MiB".to_string()
    } else {
        format!(
            "use -o force_size=on with a size that is a whole number of MiB (e.g. {}M) to keep the size exact",
            ctx.size.div_ceil(MIB).max(1)
        )
    };
    crate::errln!(
        "{}: warning: {}: fixed VHD virtual size {size} bytes is not a whole number of MiB{}; Azure rejects such images: {fix}",
        crate::output::program_name(),
        ctx.filename,
        if force_size {
            ""
        } else {
            " (rounded up to the CHS geometry)"
        },
    );
}

/// The footer timestamp: seconds since 2000-01-01 00:00:00 UTC, now, or
/// with `--reproducible` at `SOURCE_DATE_EPOCH` (0 when unset or earlier
/// than 2000). Like qemu, the count wraps at 32 bits.
fn creation_timestamp(ctx: &CreateContext) -> u32 {
    let unix = if ctx.reproducible {
        crate::reproducible::source_date_epoch()
    } else {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    unix.saturating_sub(VHD_TIMESTAMP_BASE) as u32
}

/// What the reader learnt from a VHD.
#[derive(Debug, Clone)]
pub struct VpcImage {
    pub footer: Footer,
    /// The dynamic header (absent for fixed disks).
    pub dynamic: Option<DynamicHeader>,
    /// The virtual size in bytes, as qemu computes it.
    pub virtual_size: u64,
}

/// How many BAT entries the reader reads at a time.
const BAT_CHUNK_ENTRIES: u64 = 16 * 1024;

/// qemu's BDRV_MAX_LENGTH: a read reaching past it fails.
const BDRV_MAX_LENGTH: u64 = (i64::MAX as u64) & !((1 << 30) - 1);
/// qemu's BDRV_REQUEST_MAX_BYTES: the largest single read.
const BDRV_REQUEST_MAX_BYTES: u64 = (i32::MAX as u64) & !(VHD_SECTOR_SIZE - 1);

/// True when qemu's block layer refuses a read of `bytes` at `offset`
/// (past its largest length or request); other reads past the end of
/// the file return zeros.
fn read_refused(offset: u64, bytes: u64) -> bool {
    bytes > BDRV_REQUEST_MAX_BYTES || offset > BDRV_MAX_LENGTH || bytes > BDRV_MAX_LENGTH - offset
}

/// Opens the VHD at `path` as qemu's vpc driver does, with qemu's checks
/// and messages: the footer copy at 0 (dynamic), else the footer at the
/// end (fixed). Every header field is untrusted: the BAT is read in
/// bounded pieces, and only the part inside the file.
pub fn read_image(path: &Path) -> Result<VpcImage> {
    let file = HostFile::open_path(path)?;
    let len = file.len();
    // qemu's block layer sees the file's length rounded up to a sector.
    let sector_len = round_to_sector(len);
    let mut buf = [0u8; FOOTER_BYTES];
    file.read_at(0, &mut buf)?;
    let mut fixed = false;
    if &buf[..VHD_COOKIE.len()] != VHD_COOKIE {
        if sector_len < FOOTER_BYTES as u64 {
            return Err(Error::image_at(path, "File too small for a VHD header"));
        }
        let at = sector_len - FOOTER_BYTES as u64;
        file.read_at(at, &mut buf)?;
        let footer = Footer::parse(&buf);
        if &footer.cookie != VHD_COOKIE || footer.disk_type != DISK_TYPE_FIXED {
            return Err(Error::image_at(path, "invalid VPC image"));
        }
        fixed = true;
    }
    let footer = Footer::parse(&buf);
    if footer.checksum != footer::footer_checksum(&buf) {
        return Err(Error::image_at(path, "Incorrect header checksum"));
    }
    let mut sectors = footer.geometry.total_sectors();
    if !footer.size_from_geometry() || sectors == CHS_MAX_GEOMETRY {
        sectors = footer.current_size / VHD_SECTOR_SIZE;
    }
    if sectors > VHD_MAX_SECTORS {
        // qemu sets no message here: the open fails with EFBIG.
        return Err(Error::open_io(
            &crate::name::of_path(path),
            std::io::Error::from_raw_os_error(libc::EFBIG),
        ));
    }
    let virtual_size = sectors * VHD_SECTOR_SIZE;
    let dynamic = if fixed {
        None
    } else {
        Some(read_dynamic(path, &file, len, &footer, virtual_size)?)
    };
    Ok(VpcImage {
        footer,
        dynamic,
        virtual_size,
    })
}

/// Reads and checks the dynamic header and the BAT of a dynamic disk, as
/// qemu does (reads past the end of the file see zeros).
fn read_dynamic(
    path: &Path,
    file: &HostFile,
    len: u64,
    footer: &Footer,
    virtual_size: u64,
) -> Result<DynamicHeader> {
    let at = footer.data_offset;
    if read_refused(at, DYNAMIC_HEADER_BYTES as u64) {
        return Err(Error::image_at(path, "Error reading dynamic VHD header"));
    }
    let mut buf = [0u8; DYNAMIC_HEADER_PREFIX];
    file.read_at(at, &mut buf)?;
    let h = DynamicHeader::parse(&buf);
    if &h.cookie != DYNAMIC_COOKIE {
        return Err(Error::image_at(path, "Invalid header magic"));
    }
    let block_size = u64::from(h.block_size);
    if !h.block_size.is_power_of_two() || block_size < VHD_SECTOR_SIZE {
        return Err(Error::image_at(
            path,
            format!("Invalid block size {}", h.block_size),
        ));
    }
    if virtual_size / block_size > u64::from(u32::MAX) {
        return Err(Error::image_at(path, "Too many blocks"));
    }
    let entries = u64::from(h.max_table_entries);
    if entries * block_size < virtual_size {
        return Err(Error::image_at(path, "Page table too small"));
    }
    if entries > (i32::MAX / 4) as u64 {
        // qemu prints the count as a signed 32-bit number.
        return Err(Error::image_at(
            path,
            format!(
                "Max Table Entries too large ({})",
                h.max_table_entries as i32
            ),
        ));
    }
    let table_offset = h.table_offset;
    let table_bytes = entries * 4;
    if read_refused(table_offset, table_bytes) {
        return Err(Error::image_at(path, "Error reading pagetable"));
    }
    // Where the next block would go: after the BAT and after every
    // allocated block (its sector bitmap, then its data).
    let bitmap_size = round_to_sector(block_size / (8 * VHD_SECTOR_SIZE));
    let mut free_data_block_offset = round_to_sector(table_offset + table_bytes);
    // Only the entries inside the file are read; past its end they are
    // zero (allocated at sector 0).
    let in_file = len.saturating_sub(table_offset).min(table_bytes) / 4;
    if in_file < entries {
        free_data_block_offset = free_data_block_offset.max(bitmap_size + block_size);
    }
    let mut chunk = vec![0u8; (BAT_CHUNK_ENTRIES.min(in_file) * 4) as usize];
    let mut done = 0u64;
    while done < in_file {
        let n = (in_file - done).min(BAT_CHUNK_ENTRIES);
        let piece = &mut chunk[..(n * 4) as usize];
        file.read_at(table_offset + done * 4, piece)?;
        for e in piece.chunks_exact(4) {
            let entry = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            if entry != BAT_UNALLOCATED {
                let next = VHD_SECTOR_SIZE * u64::from(entry) + bitmap_size + block_size;
                free_data_block_offset = free_data_block_offset.max(next);
            }
        }
        done += n;
    }
    if free_data_block_offset > round_to_sector(len) {
        return Err(Error::image_at(
            path,
            "block-vpc: free_data_block_offset points after the end of file. The image has been truncated.",
        ));
    }
    Ok(h)
}

/// What `qemu-img info -f vpc` reports about the VHD at `path` (the format
/// level: the info layer adds the file name, allocation and `file` child).
/// A fixed VHD is read from its footer (probing sees it as raw).
pub fn inspect(path: &Path) -> Result<ImageInfo> {
    let image = read_image(path)?;
    Ok(ImageInfo {
        filename: path.display().to_string(),
        format: "vpc".to_string(),
        virtual_size: image.virtual_size,
        cluster_size: image.dynamic.as_ref().map(|d| u64::from(d.block_size)),
        dirty_flag: Some(false),
        ..ImageInfo::default()
    })
}
