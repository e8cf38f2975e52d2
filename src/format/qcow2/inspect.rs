//! Reading a qcow2 image for `info`: the header and its extensions, the
//! backing file name, the snapshot table, persistent bitmaps and the
//! encryption header, with the checks qemu makes when it opens an image.
//!
//! Every field is untrusted. Sizes and offsets are checked (as qemu
//! checks them) before they are used; nothing is allocated by a header
//! field beyond qemu's own limits (names of at most 64 KiB, a snapshot
//! table of at most 64 MiB read entry by entry), and reads past the end
//! of the file return zeros as in qemu. The L1 and refcount tables are
//! validated but not read: `info` does not need them.

use super::header::{
    AUTOCLEAR_BITMAPS, AUTOCLEAR_DATA_FILE_RAW, COMPAT_LAZY_REFCOUNTS, COMPRESSION_ZLIB,
    COMPRESSION_ZSTD, EXT_BACKING_FORMAT, EXT_BITMAPS, EXT_CRYPTO, EXT_DATA_FILE, EXT_END,
    EXT_FEATURE_TABLE, FEATURE_NAME_ENTRY_SIZE, Header, INCOMPAT_COMPRESSION, INCOMPAT_CORRUPT,
    INCOMPAT_DATA_FILE, INCOMPAT_DIRTY, INCOMPAT_EXTL2, QCOW2_MAGIC, V2_HEADER_LENGTH, c_string,
    fail,
};
use crate::error::{Error, Result};
use crate::image::HostFile;
use crate::name::escape;
use crate::qapi::{FormatSpecific, ImageInfo, Qcow2Encryption, Qcow2Specific, SnapshotInfo};
use byteorder::{BigEndian, ByteOrder};
use std::path::Path;

use super::bitmaps::{BitmapsExt, check_bitmaps_ext, read_bitmaps};
use super::luks::read_luks;

/// Bytes of the header struct qemu reads first (v3 with compression type
/// and padding).
const HEADER_READ: usize = 112;
/// Smallest v3 header: everything up to and including header_length.
const V3_MIN_HEADER_LENGTH: u32 = 104;
/// qemu's cluster size limits: 512 bytes to 2 MiB.
const MIN_CLUSTER_BITS: u32 = 9;
const MAX_CLUSTER_BITS: u32 = 21;
/// With extended L2 entries a cluster has 32 subclusters of at least 512
/// bytes.
const MIN_EXTL2_CLUSTER_BITS: u32 = 14;
/// qemu's QCOW_MAX_SNAPSHOTS.
pub const MAX_SNAPSHOTS: u32 = 65536;
/// qemu's QCOW_MAX_SNAPSHOTS_SIZE: the whole snapshot table.
pub const MAX_SNAPSHOTS_SIZE: u64 = 1024 * MAX_SNAPSHOTS as u64;
/// qemu's QCOW_MAX_SNAPSHOT_EXTRA_DATA.
const MAX_SNAPSHOT_EXTRA_DATA: u32 = 1024;
/// Size of a snapshot table entry's fixed part.
const SNAPSHOT_HEADER_SIZE: usize = 40;
/// qemu's QCOW_MAX_L1_SIZE (bytes).
const MAX_L1_SIZE: u64 = 32 << 20;
/// qemu's QCOW_MAX_REFTABLE_SIZE (bytes).
const MAX_REFTABLE_SIZE: u64 = 8 << 20;
/// Longest backing file name qemu accepts.
const MAX_BACKING_NAME: u32 = 1023;
/// qemu keeps the backing format in a 16-byte buffer.
const BACKING_FORMAT_BUF: u32 = 16;
/// crypt_method values.
const CRYPT_NONE: u32 = 0;
const CRYPT_AES: u32 = 1;
const CRYPT_LUKS: u32 = 2;
/// Every incompatible feature bit qemu 10 knows.
const KNOWN_INCOMPAT: u64 =
    INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;

/// What the header extensions say.
#[derive(Default)]
struct Extensions {
    backing_format: Option<String>,
    data_file: Option<String>,
    /// (type, bit, name) from the feature name table, in table order.
    feature_table: Vec<(u8, u8, String)>,
    /// The LUKS header the crypto extension points at (read and checked
    /// while the extensions are read, as qemu opens it there).
    luks: Option<crate::qapi::LuksInfo>,
    bitmaps: Option<BitmapsExt>,
}

/// Everything `info` shows about a qcow2 image.
pub fn inspect(path: &Path) -> Result<ImageInfo> {
    let f = HostFile::open_path(path)?;
    inspect_file(&f)
}

/// [`inspect`] on an opened file (also the fuzz entry point).
pub fn inspect_file(f: &HostFile) -> Result<ImageInfo> {
    let mut head = [0u8; HEADER_READ];
    f.read_at(0, &mut head)?;
    let h = read_header(&head)?;
    let cluster_size = h.cluster_size();

    let ext_start = u64::from(h.header_length);
    let ext_end = if h.backing_file_offset != 0 {
        h.backing_file_offset
    } else {
        cluster_size
    };
    // qemu's order: compression type, unknown features (named from the
    // feature table, whatever else the extensions hold), the remaining
    // header fields, the tables, and only then the extensions.
    check_compression(&h)?;
    let unknown = h.incompatible_features & !KNOWN_INCOMPAT;
    if unknown != 0 {
        let mut ext = Extensions::default();
        // As qemu: an error while looking for the table is ignored.
        let _ = read_extensions(f, &h, ext_start, ext_end, &mut ext);
        return Err(unsupported_features(unknown, &ext.feature_table));
    }
    check_header_fields(&h)?;
    check_tables(&h)?;
    if h.crypt_method > CRYPT_LUKS {
        // qemu prints the method as a signed number.
        return Err(fail(format!(
            "Unsupported encryption method {}",
            h.crypt_method as i32
        )));
    }
    let mut ext = Extensions::default();
    read_extensions(f, &h, ext_start, ext_end, &mut ext)?;
    let encrypt = match h.crypt_method {
        CRYPT_NONE => None,
        CRYPT_AES => Some(Qcow2Encryption::Aes),
        _ => {
            let luks = ext.luks.take().ok_or_else(|| {
                fail(format!(
                    "Missing CRYPTO header for crypt method {}",
                    h.crypt_method as i32
                ))
            })?;
            Some(Qcow2Encryption::Luks(Box::new(luks)))
        }
    };

    let backing_filename = if h.backing_file_offset != 0 {
        let len = h.backing_file_size;
        if len > MAX_BACKING_NAME || u64::from(len) > cluster_size - h.backing_file_offset {
            return Err(fail("Backing file name too long"));
        }
        let name = f.read_vec(h.backing_file_offset, len as usize)?;
        // A C string to qemu: it ends at the first NUL; empty is none.
        Some(c_string(&name)).filter(|n| !n.is_empty())
    } else {
        None
    };

    let snapshots = read_snapshots(f, &h)?;
    let bitmaps = match &ext.bitmaps {
        Some(b) if h.autoclear_features & AUTOCLEAR_BITMAPS != 0 => read_bitmaps(f, &h, b)?,
        _ => None,
    };

    let v3 = h.version >= 3;
    let has_data_file = v3 && h.incompatible_features & INCOMPAT_DATA_FILE != 0;
    let specific = Qcow2Specific {
        compat: if v3 { "1.1" } else { "0.10" }.to_string(),
        data_file: if has_data_file {
            ext.data_file.clone()
        } else {
            None
        },
        data_file_raw: has_data_file.then_some(h.autoclear_features & AUTOCLEAR_DATA_FILE_RAW != 0),
        extended_l2: v3.then_some(h.incompatible_features & INCOMPAT_EXTL2 != 0),
        lazy_refcounts: v3.then_some(h.compatible_features & COMPAT_LAZY_REFCOUNTS != 0),
        corrupt: v3.then_some(h.incompatible_features & INCOMPAT_CORRUPT != 0),
        refcount_bits: 1u32 << h.refcount_order,
        compression_type: match h.compression_type {
            COMPRESSION_ZSTD => "zstd",
            _ => "zlib",
        }
        .to_string(),
        bitmaps,
        encrypt,
    };

    Ok(ImageInfo {
        format: "qcow2".to_string(),
        // qemu keeps the size in whole sectors.
        virtual_size: h.virtual_size(),
        cluster_size: Some(cluster_size),
        dirty_flag: Some(v3 && h.incompatible_features & INCOMPAT_DIRTY != 0),
        encrypted: (h.crypt_method != CRYPT_NONE).then_some(true),
        backing_filename_format: if backing_filename.is_some() {
            ext.backing_format.filter(|f| !f.is_empty())
        } else {
            None
        },
        backing_filename,
        // qemu does not list snapshots of an image with an external data
        // file (they are read and checked, but not supported).
        snapshots: if has_data_file { Vec::new() } else { snapshots },
        format_specific: Some(FormatSpecific::Qcow2(specific)),
        ..ImageInfo::default()
    })
}

/// The header, with qemu's open-time checks on its own fields.
fn read_header(head: &[u8; HEADER_READ]) -> Result<Header> {
    if BigEndian::read_u32(&head[0..4]) != QCOW2_MAGIC {
        return Err(fail("Image is not in qcow2 format"));
    }
    let version = BigEndian::read_u32(&head[4..8]);
    if !(2..=3).contains(&version) {
        return Err(fail(format!("Unsupported qcow2 version {version}")));
    }
    let mut h = Header::parse(head).ok_or_else(|| fail("qcow2 header too short"))?;
    if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&h.cluster_bits) {
        return Err(fail(format!(
            "Unsupported cluster size: 2^{}",
            h.cluster_bits
        )));
    }
    if version == 2 {
        h.incompatible_features = 0;
        h.compatible_features = 0;
        h.autoclear_features = 0;
        h.refcount_order = 4;
        h.header_length = V2_HEADER_LENGTH;
        h.compression_type = COMPRESSION_ZLIB;
    } else {
        if h.header_length < V3_MIN_HEADER_LENGTH {
            return Err(fail("qcow2 header too short"));
        }
        if u64::from(h.header_length) > h.cluster_size() {
            return Err(fail("qcow2 header exceeds cluster size"));
        }
        if h.header_length <= V3_MIN_HEADER_LENGTH {
            h.compression_type = COMPRESSION_ZLIB;
        }
    }
    if h.backing_file_offset > h.cluster_size() {
        return Err(fail("Invalid backing file offset"));
    }
    Ok(h)
}

/// The header fields qemu checks after the feature bits.
fn check_header_fields(h: &Header) -> Result<()> {
    if h.incompatible_features & INCOMPAT_EXTL2 != 0 && h.cluster_bits < MIN_EXTL2_CLUSTER_BITS {
        return Err(fail(format!(
            "Unsupported subcluster size: {}",
            h.cluster_size() / 32
        )));
    }
    if h.refcount_order > 6 {
        return Err(fail(
            "Reference count entry width too large; may not exceed 64 bits",
        ));
    }
    Ok(())
}

/// Reads the header extensions between `start` and `end` (both within
/// the first cluster, so every length is bounded by 2 MiB) into `ext`;
/// on an error, `ext` holds what was read before it.
fn read_extensions(
    f: &HostFile,
    h: &Header,
    start: u64,
    end: u64,
    ext: &mut Extensions,
) -> Result<()> {
    let mut offset = start;
    while offset < end {
        let mut eh = [0u8; 8];
        f.read_at(offset, &mut eh)?;
        offset += 8;
        let kind = BigEndian::read_u32(&eh[0..4]);
        let len = BigEndian::read_u32(&eh[4..8]);
        if offset > end || u64::from(len) > end - offset {
            return Err(fail("Header extension too large"));
        }
        match kind {
            EXT_END => return Ok(()),
            EXT_BACKING_FORMAT => {
                if len >= BACKING_FORMAT_BUF {
                    return Err(fail(format!(
                        "ERROR: ext_backing_format: len={len} too large (>={BACKING_FORMAT_BUF})"
                    )));
                }
                let data = f.read_vec(offset, len as usize)?;
                ext.backing_format = Some(c_string(&data));
            }
            EXT_FEATURE_TABLE => {
                // qemu reads the table into a zeroed buffer two entries
                // longer (a later table replaces an earlier one) and walks
                // it up to the first entry with an empty name.
                let mut data = f.read_vec(offset, len as usize)?;
                data.resize((len as usize).next_multiple_of(FEATURE_NAME_ENTRY_SIZE), 0);
                ext.feature_table = data
                    .chunks_exact(FEATURE_NAME_ENTRY_SIZE)
                    .take_while(|e| e[2] != 0)
                    .map(|e| (e[0], e[1], c_string(&e[2..])))
                    .collect();
            }
            EXT_CRYPTO => {
                if h.crypt_method != CRYPT_LUKS {
                    return Err(fail(
                        "CRYPTO header extension only expected with LUKS encryption method",
                    ));
                }
                if len != 16 {
                    return Err(fail(format!(
                        "CRYPTO header extension size {len}, but expected size 16"
                    )));
                }
                let mut d = [0u8; 16];
                f.read_at(offset, &mut d)?;
                let (offset, length) = (BigEndian::read_u64(&d[0..]), BigEndian::read_u64(&d[8..]));
                if offset % h.cluster_size() != 0 {
                    return Err(fail(format!(
                        "Encryption header offset '{offset}' is not a multiple of cluster size '{}'",
                        h.cluster_size()
                    )));
                }
                ext.luks = Some(read_luks(f, offset, length)?);
            }
            EXT_BITMAPS if h.autoclear_features & AUTOCLEAR_BITMAPS != 0 => {
                if len != 24 {
                    return Err(fail("bitmaps_ext: Invalid extension length"));
                }
                let mut d = [0u8; 24];
                f.read_at(offset, &mut d)?;
                if BigEndian::read_u32(&d[4..]) != 0 {
                    return Err(fail("bitmaps_ext: Reserved field is not zero"));
                }
                let b = BitmapsExt {
                    nb_bitmaps: BigEndian::read_u32(&d[0..]),
                    directory_size: BigEndian::read_u64(&d[8..]),
                    directory_offset: BigEndian::read_u64(&d[16..]),
                };
                check_bitmaps_ext(h, &b)?;
                ext.bitmaps = Some(b);
            }
            EXT_DATA_FILE => {
                let data = f.read_vec(offset, len as usize)?;
                ext.data_file = Some(c_string(&data));
            }
            _ => {}
        }
        offset += u64::from(len).div_ceil(8) * 8;
    }
    Ok(())
}

/// qemu's message for unknown incompatible feature bits `mask`: the
/// names the image's feature table gives them (in table order, at most 46
/// bytes each), then one hex mask of the bits it does not name.
fn unsupported_features(mut mask: u64, table: &[(u8, u8, String)]) -> Error {
    const INCOMPATIBLE: u8 = 0;
    let mut names = Vec::new();
    for (kind, bit, name) in table {
        // A shift by 64 or more wraps as on x86, where qemu runs `1ULL << bit`.
        let b = 1u64.wrapping_shl(u32::from(*bit));
        if *kind == INCOMPATIBLE && mask & b != 0 {
            names.push(escape(name).into_owned());
            mask &= !b;
        }
    }
    if mask != 0 {
        names.push(format!("Unknown incompatible feature: {mask:x}"));
    }
    fail(format!(
        "Unsupported qcow2 feature(s): {}",
        names.join(", ")
    ))
}

/// qemu's `validate_compression_type`: a known type, with the
/// incompatible bit set exactly when it is not zlib.
fn check_compression(h: &Header) -> Result<()> {
    let compression = if h.version >= 3 && h.header_length > V3_MIN_HEADER_LENGTH {
        h.compression_type
    } else {
        COMPRESSION_ZLIB
    };
    let bit = h.incompatible_features & INCOMPAT_COMPRESSION != 0;
    match compression {
        COMPRESSION_ZLIB if bit => Err(fail(
            "qcow2: Compression type incompatible feature bit must not be set",
        )),
        COMPRESSION_ZSTD if !bit => Err(fail(
            "qcow2: Compression type incompatible feature bit must be set",
        )),
        COMPRESSION_ZLIB | COMPRESSION_ZSTD => Ok(()),
        other => Err(fail(format!("qcow2: unknown compression type: {other}"))),
    }
}

/// qemu's `qcow2_validate_table`: at most `max_bytes` of entries, not
/// reaching past INT64_MAX, starting on a cluster boundary; the messages
/// name the table.
fn validate_table(
    h: &Header,
    offset: u64,
    entries: u64,
    entry_len: u64,
    max_bytes: u64,
    table: &str,
) -> Result<()> {
    if entries > max_bytes / entry_len {
        return Err(fail(format!("{table} too large")));
    }
    let size = entries * entry_len;
    if i64::MAX as u64 - size < offset || offset & (h.cluster_size() - 1) != 0 {
        return Err(fail(format!("{table} offset invalid")));
    }
    Ok(())
}

/// The refcount, snapshot and L1 table checks qemu makes at open.
fn check_tables(h: &Header) -> Result<()> {
    let cluster_size = h.cluster_size();
    if h.refcount_table_clusters == 0 {
        return Err(fail("Image does not contain a reference count table"));
    }
    validate_table(
        h,
        h.refcount_table_offset,
        u64::from(h.refcount_table_clusters),
        cluster_size,
        MAX_REFTABLE_SIZE,
        "Reference count table",
    )?;
    validate_table(
        h,
        h.snapshots_offset,
        u64::from(h.nb_snapshots),
        SNAPSHOT_HEADER_SIZE as u64,
        SNAPSHOT_HEADER_SIZE as u64 * u64::from(MAX_SNAPSHOTS),
        "Snapshot table",
    )?;
    validate_table(
        h,
        h.l1_table_offset,
        u64::from(h.l1_size),
        8,
        MAX_L1_SIZE,
        "Active L1 table",
    )?;
    let l2_entry_shift = if h.incompatible_features & INCOMPAT_EXTL2 != 0 {
        4
    } else {
        3
    };
    let l2_bits = h.cluster_bits - l2_entry_shift;
    let shift = h.cluster_bits + l2_bits;
    // qemu's size_to_l1 rounds up in wrapping 64-bit arithmetic.
    let needed = h.size.wrapping_add((1u64 << shift) - 1) >> shift;
    if needed > i32::MAX as u64 {
        return Err(fail("Image is too big"));
    }
    if u64::from(h.l1_size) < needed {
        return Err(fail("L1 table is too small"));
    }
    Ok(())
}

/// The snapshot table, entry by entry (at most 65536 entries and 64 MiB,
/// as qemu allows).
fn read_snapshots(f: &HostFile, h: &Header) -> Result<Vec<SnapshotInfo>> {
    let mut out = Vec::with_capacity(h.nb_snapshots.min(1024) as usize);
    let mut offset = h.snapshots_offset;
    for i in 0..h.nb_snapshots {
        offset = offset
            .checked_next_multiple_of(8)
            .ok_or_else(|| fail("Snapshot table offset invalid"))?;
        let mut sh = [0u8; SNAPSHOT_HEADER_SIZE];
        f.read_at(offset, &mut sh)?;
        offset += SNAPSHOT_HEADER_SIZE as u64;
        let id_len = BigEndian::read_u16(&sh[12..]) as usize;
        let name_len = BigEndian::read_u16(&sh[14..]) as usize;
        let date_sec = BigEndian::read_u32(&sh[16..]);
        let date_nsec = BigEndian::read_u32(&sh[20..]);
        let vm_clock_nsec = BigEndian::read_u64(&sh[24..]);
        let mut vm_state_size = u64::from(BigEndian::read_u32(&sh[32..]));
        let extra_len = BigEndian::read_u32(&sh[36..]);
        if extra_len > MAX_SNAPSHOT_EXTRA_DATA {
            return Err(fail(format!(
                "Too much extra metadata in snapshot table entry {i}\n{}",
                "You can force-remove this extra metadata with qemu-img check -r all"
            )));
        }
        let mut extra = [0u8; 24];
        let used = (extra_len as usize).min(extra.len());
        f.read_at(offset, &mut extra[..used])?;
        offset += u64::from(extra_len);
        if extra_len >= 8 {
            vm_state_size = BigEndian::read_u64(&extra[0..]);
        }
        let icount = (extra_len >= 24)
            .then(|| BigEndian::read_u64(&extra[16..]))
            .filter(|&c| c != u64::MAX);
        let id = f.read_vec(offset, id_len)?;
        offset += id_len as u64;
        let name = f.read_vec(offset, name_len)?;
        offset += name_len as u64;
        if offset - h.snapshots_offset > MAX_SNAPSHOTS_SIZE {
            return Err(fail(format!(
                "Snapshot table is too big\nYou can force-remove all {} overhanging snapshots with qemu-img check -r all",
                h.nb_snapshots - i
            )));
        }
        out.push(SnapshotInfo {
            // qemu lists snapshots through fixed buffers of 128 and 256
            // bytes: longer ids and names are cut.
            id: c_string(&id[..id.len().min(127)]),
            name: c_string(&name[..name.len().min(255)]),
            vm_state_size,
            date_sec: u64::from(date_sec),
            date_nsec,
            vm_clock_sec: vm_clock_nsec / 1_000_000_000,
            vm_clock_nsec: (vm_clock_nsec % 1_000_000_000) as u32,
            icount,
        });
    }
    Ok(out)
}
