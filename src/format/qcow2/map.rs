//! Reading a qcow2 image: L1/L2 lookups (standard and extended L2
//! entries), zero and compressed clusters, an external data file, and
//! qemu's detection of metadata preallocation.
//!
//! The header was validated by [`super::inspect`] (qemu's open checks);
//! here table contents are untrusted: unaligned offsets are errors,
//! reads past the end of the file return zeros (as in qemu), and at most
//! [`L2_CACHE`] L2 tables are held.

use super::header::{
    COMPRESSION_ZSTD, Header, INCOMPAT_DATA_FILE, INCOMPAT_EXTL2, V2_HEADER_LENGTH,
};
use crate::error::{Error, Result};
use crate::image::{Backing, BlockDriver, Extent, ExtentKind, HostFile, HostRef, Layer, codec};
use crate::qapi::{FormatSpecific, ImageInfo};
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex, OnceLock};

/// L2 tables kept in memory.
const L2_CACHE: usize = 16;
const L1E_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const L2E_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const OFLAG_COPIED: u64 = 1 << 63;
const OFLAG_COMPRESSED: u64 = 1 << 62;
const OFLAG_ZERO: u64 = 1;
const REFT_OFFSET_MASK: u64 = 0xffff_ffff_ffff_fe00;

/// qemu's `QCow2SubclusterType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub {
    Normal,
    Compressed,
    ZeroPlain,
    ZeroAlloc,
    UnallocPlain,
    UnallocAlloc,
    Invalid,
}

/// An opened qcow2 image.
pub struct Qcow2Driver {
    files: Vec<HostFile>,
    backing: Option<Backing>,
    header: Header,
    size: u64,
    l1: Vec<u64>,
    extl2: bool,
    data_file: bool,
    zstd: bool,
    cache: Mutex<Vec<(u64, Arc<Vec<u8>>)>>,
    prealloc: OnceLock<bool>,
}

/// Opens the qcow2 image `filename` (already checked by `info`).
pub fn open(filename: &str, info: &ImageInfo, backing: Option<Backing>) -> Result<Layer> {
    let file = HostFile::open(filename)?;
    let mut head = [0u8; 112];
    file.read_at(0, &mut head)?;
    let mut header = Header::parse(&head)
        .ok_or_else(|| Error::Failed("Image is not in qcow2 format".to_string()))?;
    if header.version < 3 {
        header.incompatible_features = 0;
        header.header_length = V2_HEADER_LENGTH;
        header.compression_type = 0;
    }
    if header.crypt_method != 0 {
        return Err(Error::Failed(
            "encrypted images are not supported for reading".to_string(),
        ));
    }
    let data_file = header.incompatible_features & INCOMPAT_DATA_FILE != 0;
    let mut files = vec![file];
    if data_file {
        let name = match &info.format_specific {
            Some(FormatSpecific::Qcow2(q)) => q.data_file.clone(),
            _ => None,
        }
        .ok_or_else(|| Error::Failed("Missing data file name in the image header".to_string()))?;
        crate::image::gate::gate(crate::image::gate::Named::DataFile, &name)?;
        files.push(HostFile::open(&name)?);
    }
    // The L1 table: bounded by qemu's 32 MiB limit (checked at open);
    // only the part inside the file is read, the rest is zeros.
    let l1_bytes = u64::from(header.l1_size) * 8;
    let in_file = files[0]
        .len()
        .saturating_sub(header.l1_table_offset)
        .min(l1_bytes);
    let mut raw = vec![0u8; in_file as usize];
    files[0].read_at(header.l1_table_offset, &mut raw)?;
    let mut l1: Vec<u64> = raw
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    l1.resize(header.l1_size as usize, 0);
    Ok(Box::new(Qcow2Driver {
        size: header.virtual_size(),
        extl2: header.incompatible_features & INCOMPAT_EXTL2 != 0,
        zstd: header.compression_type == COMPRESSION_ZSTD,
        data_file,
        files,
        backing,
        header,
        l1,
        cache: Mutex::new(Vec::new()),
        prealloc: OnceLock::new(),
    }))
}

/// C's `%#x`: `0x` prefix except for zero.
fn hex(v: u64) -> String {
    if v == 0 {
        "0".to_string()
    } else {
        format!("{v:#x}")
    }
}

fn corrupt(what: String) -> Error {
    Error::Failed(format!("qcow2: Image is corrupt: {what}"))
}

impl Qcow2Driver {
    fn cluster_bits(&self) -> u32 {
        self.header.cluster_bits
    }

    fn cluster_size(&self) -> u64 {
        1 << self.header.cluster_bits
    }

    /// Entries per L2 table.
    fn l2_entries(&self) -> u64 {
        self.cluster_size() / if self.extl2 { 16 } else { 8 }
    }

    fn subclusters(&self) -> u64 {
        if self.extl2 { 32 } else { 1 }
    }

    fn l2_table(&self, offset: u64) -> Result<Arc<Vec<u8>>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = cache.iter().position(|(o, _)| *o == offset) {
            let hit = cache.remove(i);
            let table = hit.1.clone();
            cache.push(hit);
            return Ok(table);
        }
        let mut t = vec![0u8; self.cluster_size() as usize];
        self.files[0].read_at(offset, &mut t)?;
        let t = Arc::new(t);
        if cache.len() >= L2_CACHE {
            cache.remove(0);
        }
        cache.push((offset, t.clone()));
        Ok(t)
    }

    fn entry(&self, table: &[u8], index: u64) -> (u64, u64) {
        let w = if self.extl2 { 16 } else { 8 };
        let at = (index * w) as usize;
        let e = u64::from_be_bytes(table[at..at + 8].try_into().unwrap_or([0; 8]));
        let bitmap = if self.extl2 {
            u64::from_be_bytes(table[at + 8..at + 16].try_into().unwrap_or([0; 8]))
        } else {
            0
        };
        (e, bitmap)
    }

    /// qemu's `qcow2_get_subcluster_type`.
    fn sub_type(&self, e: u64, bitmap: u64, sc: u64) -> Sub {
        if e & OFLAG_COMPRESSED != 0 {
            return Sub::Compressed;
        }
        if !self.extl2 && e & OFLAG_ZERO != 0 {
            return if e & L2E_OFFSET_MASK != 0 {
                Sub::ZeroAlloc
            } else {
                Sub::ZeroPlain
            };
        }
        let normal = e & L2E_OFFSET_MASK != 0 || (self.data_file && e & OFLAG_COPIED != 0);
        if !self.extl2 {
            return if normal {
                Sub::Normal
            } else {
                Sub::UnallocPlain
            };
        }
        if normal {
            if (bitmap >> 32) & bitmap != 0 {
                Sub::Invalid
            } else if bitmap & (1 << (sc + 32)) != 0 {
                Sub::ZeroAlloc
            } else if bitmap & (1 << sc) != 0 {
                Sub::Normal
            } else {
                Sub::UnallocAlloc
            }
        } else if bitmap & 0xffff_ffff != 0 {
            Sub::Invalid
        } else if bitmap & (1 << (sc + 32)) != 0 {
            Sub::ZeroPlain
        } else {
            Sub::UnallocPlain
        }
    }

    /// qemu's `qcow2_detect_metadata_preallocation`: more clusters have
    /// a refcount than the file has allocated blocks for.
    fn metadata_preallocated(&self) -> bool {
        *self
            .prealloc
            .get_or_init(|| self.detect_prealloc().unwrap_or(false))
    }

    fn detect_prealloc(&self) -> Result<bool> {
        let f = &self.files[0];
        let cs = self.cluster_size();
        let allocated = std::fs::metadata(crate::qapi::bytes::path_of(f.name()))
            .map(|m| m.blocks() * 512)
            .unwrap_or(0);
        let real = allocated / cs;
        let threshold = (real * 10 / 9).max(real + 2);
        let end = f.sector_len().div_ceil(cs);
        let order = self.header.refcount_order;
        let block_bits = self.cluster_bits() + 3 - order;
        let table_entries = u64::from(self.header.refcount_table_clusters) * cs / 8;
        let mut block: Option<(u64, Vec<u8>)> = None;
        let mut count = 0;
        let mut i = 0;
        while i < end && count < threshold {
            let ti = i >> block_bits;
            if ti >= table_entries {
                break;
            }
            let mut e = [0u8; 8];
            f.read_at(self.header.refcount_table_offset + ti * 8, &mut e)?;
            let rb = u64::from_be_bytes(e) & REFT_OFFSET_MASK;
            if rb == 0 || rb & (cs - 1) != 0 {
                // No block: every cluster it covers has refcount 0.
                i = (ti + 1) << block_bits;
                continue;
            }
            if block.as_ref().is_none_or(|(o, _)| *o != rb) {
                let mut b = vec![0u8; cs as usize];
                f.read_at(rb, &mut b)?;
                block = Some((rb, b));
            }
            let b = block.as_ref().map(|(_, b)| b.as_slice()).unwrap_or(&[]);
            let idx = i & ((1 << block_bits) - 1);
            let bit = idx << order;
            let bits = 1u64 << order;
            let byte = (bit / 8) as usize;
            let refcount = if bits >= 8 {
                b[byte..byte + (bits / 8) as usize]
                    .iter()
                    .fold(0u64, |a, &x| (a << 8) | u64::from(x))
            } else {
                u64::from(b[byte] >> (bit % 8)) & ((1 << bits) - 1)
            };
            count += u64::from(refcount != 0);
            i += 1;
        }
        Ok(count >= threshold)
    }

    /// The host place of guest `offset` in a cluster of kind `sub`.
    fn host(&self, e: u64, offset: u64) -> HostRef {
        let in_cluster = offset & (self.cluster_size() - 1);
        HostRef {
            file: u16::from(self.data_file),
            offset: (e & L2E_OFFSET_MASK) + in_cluster,
        }
    }

    /// The compressed cluster at guest `offset`, decompressed.
    fn decompress(&self, offset: u64, out: &mut [u8]) -> Result<()> {
        let cb = self.cluster_bits();
        let l1_index = offset >> (cb + self.l2_entries().trailing_zeros());
        let l2_offset = self.l1.get(l1_index as usize).copied().unwrap_or(0) & L1E_OFFSET_MASK;
        let table = self.l2_table(l2_offset)?;
        let (e, _) = self.entry(&table, (offset >> cb) & (self.l2_entries() - 1));
        let shift = 62 - (cb - 8);
        let coffset = e & ((1u64 << shift) - 1);
        let sectors = ((e >> shift) & ((1u64 << (cb - 8)) - 1)) + 1;
        let csize = sectors * 512 - (coffset & 511);
        let mut packed = vec![0u8; csize as usize];
        self.files[0].read_at(coffset, &mut packed)?;
        let ok = if self.zstd {
            codec::unzstd(&packed, out)
        } else {
            codec::inflate_raw(&packed, out)
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Failed(format!(
                "Could not read compressed cluster at offset {offset}: Input/output error"
            )))
        }
    }
}

impl BlockDriver for Qcow2Driver {
    fn format_name(&self) -> &'static str {
        "qcow2"
    }

    fn virtual_size(&self) -> u64 {
        self.size
    }

    fn files(&self) -> &[HostFile] {
        &self.files
    }

    fn backing(&self) -> Option<&Backing> {
        self.backing.as_ref()
    }

    fn supports_backing(&self) -> bool {
        true
    }

    fn map(&self, offset: u64, max_len: u64) -> Result<Extent> {
        let cb = self.cluster_bits();
        let cs = self.cluster_size();
        let entries = self.l2_entries();
        let in_cluster = offset & (cs - 1);
        let l2_index = (offset >> cb) & (entries - 1);
        let available = (entries - l2_index) << cb;
        let needed = max_len.saturating_add(in_cluster).min(available);
        let l1_index = offset >> (cb + entries.trailing_zeros());
        let l2_offset = self.l1.get(l1_index as usize).copied().unwrap_or(0) & L1E_OFFSET_MASK;
        if l2_offset == 0 {
            return Ok(Extent {
                len: needed - in_cluster,
                kind: ExtentKind::Unallocated { at: None },
            });
        }
        if l2_offset & (cs - 1) != 0 {
            return Err(corrupt(format!(
                "L2 table offset {hex_l2_offset} unaligned (L1 index: {hex_l1_index})",
                hex_l2_offset = hex(l2_offset),
                hex_l1_index = hex(l1_index)
            )));
        }
        let table = self.l2_table(l2_offset)?;
        let sc_bits = cb - self.subclusters().trailing_zeros();
        let sc_count = self.subclusters();
        let first_sc = in_cluster >> sc_bits;
        let (e0, b0) = self.entry(&table, l2_index);
        let kind = self.sub_type(e0, b0, first_sc);
        if self.header.version < 3 && matches!(kind, Sub::ZeroPlain | Sub::ZeroAlloc) {
            return Err(corrupt(format!(
                "Zero cluster entry found in pre-v3 image (L2 offset: {hex_l2_offset}, L2 index: {hex_l2_index})",
                hex_l2_offset = hex(l2_offset),
                hex_l2_index = hex(l2_index)
            )));
        }
        let with_offset = matches!(kind, Sub::Normal | Sub::ZeroAlloc | Sub::UnallocAlloc);
        if with_offset {
            let hc = e0 & L2E_OFFSET_MASK;
            if hc & (cs - 1) != 0 {
                return Err(corrupt(format!(
                    "Cluster allocation offset {hex_hc} unaligned (L2 offset: {hex_l2_offset}, L2 index: {hex_l2_index})",
                    hex_hc = hex(hc),
                    hex_l2_offset = hex(l2_offset),
                    hex_l2_index = hex(l2_index)
                )));
            }
            if self.data_file && hc + in_cluster != offset {
                return Err(corrupt(format!(
                    "External data file host cluster offset {hex_hc} does not match guest cluster offset: {}, L2 index: {hex_l2_index})",
                    hex(offset - in_cluster),
                    hex_hc = hex(hc),
                    hex_l2_index = hex(l2_index)
                )));
            }
        }
        if kind == Sub::Compressed && self.data_file {
            return Err(corrupt(format!(
                "Compressed cluster entry found in image with external data file (L2 offset: {hex_l2_offset}, L2 index: {hex_l2_index})",
                hex_l2_offset = hex(l2_offset),
                hex_l2_index = hex(l2_index)
            )));
        }
        // Count the subclusters of the same type (and contiguous host
        // offsets) from the first one, within `needed`.
        let mut run = if kind == Sub::Compressed {
            sc_count - first_sc
        } else {
            let nb_clusters = needed.div_ceil(cs);
            let mut run = 0;
            let mut expected = e0 & L2E_OFFSET_MASK;
            'outer: for i in 0..nb_clusters {
                let (e, b) = self.entry(&table, l2_index + i);
                if with_offset && e & L2E_OFFSET_MASK != expected {
                    break;
                }
                let start = if i == 0 { first_sc } else { 0 };
                for j in start..sc_count {
                    let t = self.sub_type(e, b, j);
                    if t == Sub::Invalid {
                        return Err(corrupt(format!(
                            "Invalid cluster entry found  (L2 offset: {hex_l2_offset}, L2 index: {})",
                            hex(l2_index + i),
                            hex_l2_offset = hex(l2_offset)
                        )));
                    }
                    if t != kind {
                        break 'outer;
                    }
                    run += 1;
                }
                expected += cs;
            }
            run
        };
        if kind == Sub::Invalid {
            return Err(corrupt(format!(
                "Invalid cluster entry found  (L2 offset: {hex_l2_offset}, L2 index: {hex_l2_index})",
                hex_l2_offset = hex(l2_offset),
                hex_l2_index = hex(l2_index)
            )));
        }
        run = run.max(1);
        let avail = ((run + first_sc) << sc_bits).min(needed);
        let len = avail - in_cluster;
        let kind = match kind {
            Sub::Normal => ExtentKind::Data {
                at: self.host(e0, offset),
                recurse: self.metadata_preallocated(),
            },
            Sub::ZeroAlloc => ExtentKind::Zero {
                at: Some(self.host(e0, offset)),
            },
            Sub::ZeroPlain => ExtentKind::Zero { at: None },
            Sub::UnallocAlloc => ExtentKind::Unallocated {
                at: Some(self.host(e0, offset)),
            },
            Sub::UnallocPlain => ExtentKind::Unallocated { at: None },
            Sub::Compressed | Sub::Invalid => ExtentKind::Compressed,
        };
        Ok(Extent { len, kind })
    }

    fn read_compressed(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let cs = self.cluster_size();
        let mut cluster = vec![0u8; cs as usize];
        let mut pos = 0usize;
        while pos < buf.len() {
            let off = offset + pos as u64;
            let start = off & !(cs - 1);
            self.decompress(start, &mut cluster)?;
            let in_cluster = (off - start) as usize;
            let n = (cs as usize - in_cluster).min(buf.len() - pos);
            buf[pos..pos + n].copy_from_slice(&cluster[in_cluster..in_cluster + n]);
            pos += n;
        }
        Ok(())
    }
}
