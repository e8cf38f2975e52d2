//! Persistent dirty bitmaps of a qcow2 image for `info`: the bitmaps
//! header extension and the bitmap directory, with the checks qemu makes
//! when it opens an image and loads its bitmaps (block/qcow2-bitmap.c).
//! The directory and the bitmap tables are bounded as qemu bounds them and
//! read in bounded chunks.

use super::header::{Header, c_string, fail};
use crate::error::Result;
use crate::image::HostFile;
use crate::name::escape;
use crate::qapi::Qcow2BitmapInfo;
use byteorder::{BigEndian, ByteOrder};

/// qemu's QCOW2_MAX_BITMAPS.
const MAX_BITMAPS: u32 = 65535;
/// qemu's QCOW2_MAX_BITMAP_DIRECTORY_SIZE.
const MAX_BITMAP_DIRECTORY_SIZE: u64 = 1024 * MAX_BITMAPS as u64;
/// Bitmap constraints qemu checks at load (qcow2-bitmap.c).
const BME_MAX_TABLE_SIZE: u32 = 0x0800_0000;
const BME_MAX_PHYS_SIZE: u64 = 0x2000_0000;
const BME_MIN_GRANULARITY_BITS: u32 = 9;
const BME_MAX_GRANULARITY_BITS: u32 = 31;
const BME_RESERVED_FLAGS: u32 = !0x7;
const BT_DIRTY_TRACKING_BITMAP: u8 = 1;
/// Bitmap directory entry: fixed part.
const BITMAP_ENTRY_SIZE: usize = 24;
/// Longest bitmap name (qcow2 spec).
const MAX_BITMAP_NAME: usize = 1023;
/// Bitmap flags.
const BME_FLAG_IN_USE: u32 = 1 << 0;
const BME_FLAG_AUTO: u32 = 1 << 1;

/// The bitmaps header extension (its fields as stored).
pub(super) struct BitmapsExt {
    pub(super) nb_bitmaps: u32,
    pub(super) directory_size: u64,
    pub(super) directory_offset: u64,
}

/// The bitmaps extension's checks, made where qemu makes them: while the
/// header extensions are read.
pub(super) fn check_bitmaps_ext(h: &Header, b: &BitmapsExt) -> Result<()> {
    if b.nb_bitmaps > MAX_BITMAPS {
        return Err(fail(format!(
            "bitmaps_ext: Image has {} bitmaps, exceeding the QEMU supported maximum of {MAX_BITMAPS}",
            b.nb_bitmaps
        )));
    }
    if b.nb_bitmaps == 0 {
        return Err(fail("found bitmaps extension with zero bitmaps"));
    }
    if b.directory_offset & (h.cluster_size() - 1) != 0 {
        return Err(fail("bitmaps_ext: invalid bitmap directory offset"));
    }
    if b.directory_size > MAX_BITMAP_DIRECTORY_SIZE {
        return Err(fail(format!(
            "bitmaps_ext: bitmap directory size ({}) exceeds the maximum supported size ({MAX_BITMAP_DIRECTORY_SIZE})",
            b.directory_size
        )));
    }
    Ok(())
}

/// The persistent bitmaps' names, granularities and flags, from the
/// bitmap directory, with the checks qemu makes when it loads them. The
/// directory is bounded as qemu bounds it (64 MiB) and only the part
/// inside the file is read: past the end it is zeros.
pub(super) fn read_bitmaps(
    f: &HostFile,
    h: &Header,
    b: &BitmapsExt,
) -> Result<Option<Vec<Qcow2BitmapInfo>>> {
    if b.directory_size == 0 {
        return Err(fail("Requested bitmap directory size is zero"));
    }
    let size = b.directory_size as usize;
    let in_file = f
        .len()
        .saturating_sub(b.directory_offset)
        .min(b.directory_size) as usize;
    let dir = f.read_vec(b.directory_offset, in_file)?;
    // Bytes of the directory, zeros past the end of the file.
    let bytes = |pos: usize, n: usize| -> Vec<u8> {
        let mut v = vec![0u8; n];
        if pos < dir.len() {
            let m = n.min(dir.len() - pos);
            v[..m].copy_from_slice(&dir[pos..pos + m]);
        }
        v
    };
    let virtual_size = h.virtual_size();
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < size {
        if pos + BITMAP_ENTRY_SIZE > size {
            return Err(fail("Broken bitmap directory"));
        }
        if out.len() as u32 >= b.nb_bitmaps {
            return Err(fail(
                "More bitmaps found than specified in header extension",
            ));
        }
        let e = bytes(pos, BITMAP_ENTRY_SIZE);
        let table_offset = BigEndian::read_u64(&e[0..]);
        let table_size = BigEndian::read_u32(&e[8..]);
        let flags = BigEndian::read_u32(&e[12..]);
        let kind = e[16];
        let granularity_bits = u32::from(e[17]);
        let name_len = BigEndian::read_u16(&e[18..]) as usize;
        let extra_len = BigEndian::read_u32(&e[20..]);
        // qemu sizes an entry in a C int: a huge extra_data_size wraps
        // (to a size that does not pass the end), and is then refused
        // for being extra data.
        let entry_size = (BITMAP_ENTRY_SIZE as i32)
            .wrapping_add(name_len as i32)
            .wrapping_add(extra_len as i32)
            .wrapping_add(7)
            & !7;
        if pos as i64 + i64::from(entry_size) > size as i64 {
            return Err(fail("Broken bitmap directory"));
        }
        if extra_len != 0 {
            return Err(fail("Bitmap extra data is not supported"));
        }
        let next = pos + entry_size as usize;
        let name_bytes = bytes(pos + BITMAP_ENTRY_SIZE, name_len);
        let name = c_string(&name_bytes);
        let phys_bytes = u64::from(table_size) * h.cluster_size();
        let covered = phys_bytes
            .checked_mul(8)
            .and_then(|x| x.checked_shl(granularity_bits))
            .unwrap_or(u64::MAX);
        let broken = table_size == 0
            || table_offset == 0
            || table_offset & (h.cluster_size() - 1) != 0
            || table_size > BME_MAX_TABLE_SIZE
            || !(BME_MIN_GRANULARITY_BITS..=BME_MAX_GRANULARITY_BITS).contains(&granularity_bits)
            || flags & BME_RESERVED_FLAGS != 0
            || name_len > MAX_BITMAP_NAME
            || kind != BT_DIRTY_TRACKING_BITMAP
            || phys_bytes > BME_MAX_PHYS_SIZE
            || (flags & BME_FLAG_IN_USE == 0 && virtual_size > covered);
        if broken {
            return Err(fail(format!(
                "Bitmap '{}' doesn't satisfy the constraints",
                escape(&name)
            )));
        }
        if flags & BME_FLAG_IN_USE == 0 {
            check_bitmap_table(f, h, &name, table_offset, table_size, granularity_bits)?;
        }
        let mut flag_names = Vec::new();
        if flags & BME_FLAG_IN_USE != 0 {
            flag_names.push("in-use");
        }
        if flags & BME_FLAG_AUTO != 0 {
            flag_names.push("auto");
        }
        out.push(Qcow2BitmapInfo {
            name,
            granularity: 1u64 << granularity_bits,
            flags: flag_names,
        });
        pos = next;
    }
    if (out.len() as u32) < b.nb_bitmaps {
        return Err(fail(
            "Less bitmaps found than specified in header extension",
        ));
    }
    Ok(Some(out))
}

/// qemu's BDRV_MAX_LENGTH: no request may reach past it.
const BDRV_MAX_LENGTH: u64 = (i64::MAX as u64) & !((1u64 << 30) - 1);
/// Bitmap table entry bits.
const BME_TABLE_ENTRY_RESERVED_MASK: u64 = 0xff00_0000_0000_01fe;
const BME_TABLE_ENTRY_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const BME_TABLE_ENTRY_FLAG_ALL_ONES: u64 = 1;

/// What qemu checks when it loads a bitmap that is not in use: the table
/// must be readable and its entries valid, and its size must match the
/// bitmap's. Entries are read in bounded chunks, and only the part of
/// the table inside the file (past the end, entries are zero and valid).
fn check_bitmap_table(
    f: &HostFile,
    h: &Header,
    name: &str,
    offset: u64,
    entries: u32,
    granularity_bits: u32,
) -> Result<()> {
    let cluster_size = h.cluster_size();
    let table_error = |why: &str| {
        fail(format!(
            "Could not read bitmap_table table from image for bitmap '{}': {why}",
            escape(name)
        ))
    };
    let bytes = u64::from(entries) * 8;
    if offset > BDRV_MAX_LENGTH || bytes > BDRV_MAX_LENGTH - offset {
        return Err(table_error("Input/output error"));
    }
    let in_file = f.len().saturating_sub(offset).min(bytes);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut done = 0u64;
    while done < in_file {
        let n = (in_file - done).min(chunk.len() as u64) as usize;
        f.read_at(offset + done, &mut chunk[..n])?;
        for e in chunk[..n].chunks_exact(8) {
            let entry = BigEndian::read_u64(e);
            let data = entry & BME_TABLE_ENTRY_OFFSET_MASK;
            let bad = entry & BME_TABLE_ENTRY_RESERVED_MASK != 0
                || (data != 0
                    && (entry & BME_TABLE_ENTRY_FLAG_ALL_ONES != 0
                        || data & (cluster_size - 1) != 0));
            if bad {
                return Err(table_error("Invalid argument"));
            }
        }
        done += n as u64;
    }
    // The table must have exactly one entry per cluster of the bitmap's
    // serialised form (one bit per granule, in whole 64-bit words).
    let size = h.virtual_size();
    let bits = size.div_ceil(1u64 << granularity_bits);
    let serialised = bits.div_ceil(64) * 8;
    if serialised.div_ceil(cluster_size) != u64::from(entries) {
        return Err(fail(format!(
            "Could not read bitmap '{}' from image: Invalid argument",
            escape(name)
        )));
    }
    Ok(())
}
