//! Reading a vmdk image: flat and hosted sparse extents (monolithic,
//! split, stream-optimized with compressed grains and markers), zeroed
//! grains, a parent image. Grain directories are read in pages and
//! grain tables through a small cache.

use super::descriptor::{c_str, parse_extent_lines};
use super::header::{
    FLAG_MARKERS, FLAG_ZERO_GRAIN, GD_AT_END, MAGIC, SECTOR_SIZE, SparseExtentHeader,
};
use crate::error::{Error, Result};
use crate::image::cache::{PagedTable, TableCache};
use crate::image::gate::{Named, gate};
use crate::image::{Backing, BlockDriver, Extent, ExtentKind, HostFile, HostRef, Layer, codec};

/// Grain tables kept in memory per extent.
const GT_CACHE: usize = 16;
/// A grain table entry meaning "reads as zeros".
const GTE_ZEROED: u32 = 1;
/// qemu reads at most this much of a descriptor file.
const MAX_DESCRIPTOR: u64 = (1 << 20) - 1;

enum Kind {
    /// Data at `start` (bytes) in the extent's file.
    Flat {
        start: u64,
    },
    Sparse(Box<SparseTables>),
}

struct SparseTables {
    /// Sectors per grain.
    grain: u64,
    gtes: u64,
    gd: PagedTable,
    gt: TableCache,
    zero_grain: bool,
    markers: bool,
    compressed: bool,
}

struct VmdkExtent {
    /// Index in `files`.
    file: u16,
    /// First guest byte and length in bytes.
    start: u64,
    len: u64,
    kind: Kind,
}

/// An opened vmdk image.
pub struct VmdkDriver {
    files: Vec<HostFile>,
    backing: Option<Backing>,
    extents: Vec<VmdkExtent>,
    size: u64,
}

fn open_sparse(file: &HostFile) -> Result<SparseTables> {
    let mut head = [0u8; 512];
    file.read_at(0, &mut head)?;
    if !head.starts_with(&MAGIC) {
        return Err(Error::Failed(format!(
            "{}: VMDK3 (COWD) extents are not supported for reading",
            file.name()
        )));
    }
    let mut h = SparseExtentHeader::parse(&head);
    if h.gd_offset == GD_AT_END {
        // The footer (one sector before the end-of-stream marker) holds
        // the real grain directory offset.
        let end = file.sector_len();
        let at = end
            .checked_sub(2 * SECTOR_SIZE)
            .ok_or_else(|| Error::Failed(format!("{}: Invalid footer", file.name())))?;
        file.read_at(at, &mut head)?;
        if !head.starts_with(&MAGIC) {
            return Err(Error::Failed(format!("{}: Invalid footer", file.name())));
        }
        h = SparseExtentHeader::parse(&head);
    }
    // qemu's limits (checked for the header by the vmdk reader; the
    // footer of a stream is checked here).
    if h.num_gtes_per_gt > 512 || h.granularity > 0x20_0000 {
        return Err(Error::Failed(format!(
            "{}: invalid grain table size or grain size in the footer",
            file.name()
        )));
    }
    let grain = h.granularity.max(1);
    let gtes = u64::from(h.num_gtes_per_gt.max(1));
    let span = gtes * grain;
    let gd_entries = h.capacity.div_ceil(span);
    Ok(SparseTables {
        grain,
        gtes,
        gd: PagedTable::new(h.gd_offset.saturating_mul(SECTOR_SIZE), gd_entries, 4),
        gt: TableCache::new((gtes * 4) as usize, GT_CACHE),
        zero_grain: h.flags & FLAG_ZERO_GRAIN != 0,
        markers: h.flags & FLAG_MARKERS != 0,
        compressed: h.compressed(),
    })
}

/// Opens the vmdk image `filename` (checked by the vmdk reader).
pub fn open(filename: &str, backing: Option<Backing>) -> Result<Layer> {
    let image = super::inspect::inspect_image(&crate::qapi::bytes::path_of(filename))?;
    let top = HostFile::open(filename)?;
    let mut head = [0u8; 4];
    top.read_at(0, &mut head)?;
    // Flat offsets come from the descriptor's extent lines, in order.
    let lines = if head == MAGIC {
        Vec::new()
    } else {
        let mut text = vec![0u8; top.len().min(MAX_DESCRIPTOR) as usize];
        top.read_at(0, &mut text)?;
        parse_extent_lines(c_str(&text)).unwrap_or_default()
    };
    let mut files = vec![top];
    let mut extents = Vec::with_capacity(image.extents.len());
    let mut start = 0u64;
    for (i, e) in image.extents.iter().enumerate() {
        let file = if e.is_image_file {
            0
        } else {
            gate(Named::Extent, &e.filename)?;
            files.push(HostFile::open(&e.filename)?);
            u16::try_from(files.len() - 1)
                .map_err(|_| Error::Failed("too many vmdk extents (at most 65535)".to_string()))?
        };
        let len = e.sectors * SECTOR_SIZE;
        let kind = if e.cluster_sectors.is_none() {
            let flat = lines.get(i).map_or(0, |l| l.flat_offset.max(0) as u64);
            Kind::Flat {
                start: flat * SECTOR_SIZE,
            }
        } else {
            Kind::Sparse(Box::new(open_sparse(&files[usize::from(file)])?))
        };
        extents.push(VmdkExtent {
            file,
            start,
            len,
            kind,
        });
        start += len;
    }
    Ok(Box::new(VmdkDriver {
        files,
        backing,
        extents,
        size: start,
    }))
}

/// What a grain table says about one grain.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Grain {
    /// The whole grain table is absent.
    NoTable,
    Unallocated,
    Zeroed,
    At(u64),
}

impl VmdkDriver {
    fn extent(&self, offset: u64) -> Result<&VmdkExtent> {
        let i = self.extents.partition_point(|e| e.start + e.len <= offset);
        self.extents
            .get(i)
            .ok_or_else(|| Error::Failed(format!("no vmdk extent at offset {offset}")))
    }

    /// The grain table covering extent offset `rel` (None: absent).
    fn table(
        &self,
        e: &VmdkExtent,
        t: &SparseTables,
        rel: u64,
    ) -> Result<Option<std::sync::Arc<Vec<u8>>>> {
        let file = &self.files[usize::from(e.file)];
        let gd_index = rel / SECTOR_SIZE / (t.gtes * t.grain);
        if gd_index >= t.gd.len() {
            return Err(Error::Failed(format!(
                "{}: grain directory too small for offset {rel}",
                file.name()
            )));
        }
        let g = t.gd.entry(file, gd_index)?;
        let gt_sector = u32::from_le_bytes([g[0], g[1], g[2], g[3]]);
        if gt_sector == 0 {
            return Ok(None);
        }
        Ok(Some(t.gt.get(file, u64::from(gt_sector) * SECTOR_SIZE)?))
    }

    /// Entry `index` of a grain table.
    fn classify(t: &SparseTables, table: &[u8], index: u64) -> Grain {
        let i = (index * 4) as usize;
        let v = u32::from_le_bytes([table[i], table[i + 1], table[i + 2], table[i + 3]]);
        match v {
            GTE_ZEROED if t.zero_grain => Grain::Zeroed,
            0 => Grain::Unallocated,
            s => Grain::At(u64::from(s) * SECTOR_SIZE),
        }
    }

    fn grain(&self, e: &VmdkExtent, t: &SparseTables, rel: u64) -> Result<Grain> {
        Ok(match self.table(e, t, rel)? {
            None => Grain::NoTable,
            Some(table) => Self::classify(t, &table, rel / SECTOR_SIZE / t.grain % t.gtes),
        })
    }
}

impl BlockDriver for VmdkDriver {
    fn format_name(&self) -> &'static str {
        "vmdk"
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
        let e = self.extent(offset)?;
        let rel = offset - e.start;
        let t = match &e.kind {
            Kind::Flat { start } => {
                return Ok(Extent {
                    len: (e.len - rel).min(max_len),
                    kind: ExtentKind::Data {
                        at: HostRef {
                            file: e.file,
                            offset: start + rel,
                        },
                        recurse: true,
                    },
                });
            }
            Kind::Sparse(t) => t,
        };
        let grain_bytes = t.grain * SECTOR_SIZE;
        let span = t.gtes * grain_bytes;
        let in_grain = rel % grain_bytes;
        let grain_start = rel - in_grain;
        let first = self.grain(e, t, rel)?;
        let step = |g: Grain, at: u64| match g {
            Grain::NoTable => span - at % span,
            _ => grain_bytes,
        };
        // Extend over the following grains of the same kind (contiguous
        // on the host for data), within the extent and `max_len`.
        let limit = max_len.saturating_add(in_grain).min(e.len - grain_start);
        let same = |g: Grain, len: u64| match (first, g) {
            (Grain::NoTable | Grain::Unallocated, Grain::NoTable | Grain::Unallocated) => true,
            (Grain::Zeroed, Grain::Zeroed) => true,
            (Grain::At(a), Grain::At(b)) => t.compressed || b == a + len,
            _ => false,
        };
        let mut len = step(first, grain_start);
        'runs: while len < limit {
            let at = grain_start + len;
            let Some(table) = self.table(e, t, at)? else {
                if !same(Grain::NoTable, len) {
                    break;
                }
                len += span - at % span;
                continue;
            };
            // The rest of this grain table, entry by entry.
            let mut index = at / grain_bytes % t.gtes;
            while index < t.gtes && len < limit {
                if !same(Self::classify(t, &table, index), len) {
                    break 'runs;
                }
                len += grain_bytes;
                index += 1;
            }
        }
        let len = len.min(limit) - in_grain;
        let kind = match first {
            Grain::NoTable | Grain::Unallocated => ExtentKind::Unallocated { at: None },
            Grain::Zeroed => ExtentKind::Zero { at: None },
            Grain::At(_) if t.compressed => ExtentKind::Compressed,
            Grain::At(host) => ExtentKind::Data {
                at: HostRef {
                    file: e.file,
                    offset: host + in_grain,
                },
                recurse: false,
            },
        };
        Ok(Extent { len, kind })
    }

    fn read_compressed(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let mut pos = 0usize;
        while pos < buf.len() {
            let off = offset + pos as u64;
            let e = self.extent(off)?;
            let Kind::Sparse(t) = &e.kind else {
                return Err(Error::Failed(format!("no compressed grain at {off}")));
            };
            let rel = off - e.start;
            let grain_bytes = (t.grain * SECTOR_SIZE) as usize;
            let in_grain = (rel % grain_bytes as u64) as usize;
            let n = (grain_bytes - in_grain).min(buf.len() - pos);
            let file = &self.files[usize::from(e.file)];
            let bad = || {
                Error::Failed(format!(
                    "{}: Could not read compressed grain at offset {off}: Invalid argument",
                    file.name()
                ))
            };
            let Grain::At(host) = self.grain(e, t, rel - in_grain as u64)? else {
                buf[pos..pos + n].fill(0);
                pos += n;
                continue;
            };
            // Only the part inside the file is read (the rest is zeros).
            let room = file
                .len()
                .saturating_sub(host)
                .min(2 * grain_bytes as u64 + 12);
            let mut packed = vec![0u8; (room as usize).max(12)];
            file.read_at(host, &mut packed)?;
            let (data, data_len) = if t.markers {
                let size = u32::from_le_bytes([packed[8], packed[9], packed[10], packed[11]]);
                (&packed[12..], size as usize)
            } else {
                (&packed[..], grain_bytes)
            };
            if data_len == 0 || data_len > 2 * grain_bytes || data_len > data.len() {
                return Err(bad());
            }
            let mut grain = vec![0u8; grain_bytes];
            let got = codec::inflate_zlib(&data[..data_len], &mut grain).ok_or_else(bad)?;
            if in_grain + n > got {
                return Err(bad());
            }
            buf[pos..pos + n].copy_from_slice(&grain[in_grain..in_grain + n]);
            pos += n;
        }
        Ok(())
    }
}
