//! Reading a qcow (version 1) image: L1/L2 lookups, compressed clusters
//! (raw deflate), a backing file. L2 tables are cached (at most
//! [`L2_CACHE`]); the L1 table is read in pages.

use super::header::QcowHeader;
use crate::error::{Error, Result};
use crate::image::cache::{PagedTable, TableCache};
use crate::image::{Backing, BlockDriver, Extent, ExtentKind, HostFile, HostRef, Layer, codec};

/// L2 tables kept in memory.
const L2_CACHE: usize = 16;
const OFLAG_COMPRESSED: u64 = 1 << 63;

/// An opened qcow image.
pub struct QcowDriver {
    files: Vec<HostFile>,
    backing: Option<Backing>,
    header: QcowHeader,
    l1: PagedTable,
    l2: TableCache,
}

/// Opens the qcow image `filename` (checked as qemu checks it).
pub fn open(filename: &str, backing: Option<Backing>) -> Result<Layer> {
    let image = super::read_image(&crate::qapi::bytes::path_of(filename))?;
    let header = image.header;
    if header.crypt_method != 0 {
        return Err(Error::Failed(
            "encrypted images are not supported for reading".to_string(),
        ));
    }
    let file = HostFile::open(filename)?;
    let l1_size = header.l1_size().unwrap_or(0);
    Ok(Box::new(QcowDriver {
        files: vec![file],
        backing,
        l1: PagedTable::new(header.l1_table_offset, l1_size, 8),
        l2: TableCache::new(8usize << header.l2_bits, L2_CACHE),
        header,
    }))
}

impl QcowDriver {
    fn cluster_size(&self) -> u64 {
        1 << self.header.cluster_bits
    }

    /// The L2 table of guest `offset` and the entry's index in it (None:
    /// no table, the whole span is unallocated).
    fn table(&self, offset: u64) -> Result<Option<(std::sync::Arc<Vec<u8>>, u64)>> {
        let cb = u32::from(self.header.cluster_bits);
        let l2b = u32::from(self.header.l2_bits);
        let l1_index = offset >> (cb + l2b);
        if l1_index >= self.l1.len() {
            return Ok(None);
        }
        let e = self.l1.entry(&self.files[0], l1_index)?;
        let l2_offset = u64::from_be_bytes(e[..8].try_into().unwrap_or([0; 8]));
        if l2_offset == 0 {
            return Ok(None);
        }
        let table = self.l2.get(&self.files[0], l2_offset)?;
        Ok(Some((table, (offset >> cb) & ((1 << l2b) - 1))))
    }

    fn entry_at(table: &[u8], index: u64) -> u64 {
        let i = (index * 8) as usize;
        u64::from_be_bytes(table[i..i + 8].try_into().unwrap_or([0; 8]))
    }

    /// The L2 entry of guest `offset` (0: unallocated).
    fn lookup(&self, offset: u64) -> Result<u64> {
        Ok(match self.table(offset)? {
            None => 0,
            Some((table, i)) => Self::entry_at(&table, i),
        })
    }
}

impl BlockDriver for QcowDriver {
    fn format_name(&self) -> &'static str {
        "qcow"
    }

    fn virtual_size(&self) -> u64 {
        self.header.virtual_size()
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
        let cs = self.cluster_size();
        let in_cluster = offset & (cs - 1);
        let span = cs << self.header.l2_bits;
        let limit = max_len.saturating_add(in_cluster);
        let start = offset - in_cluster;
        // Runs of the same kind (contiguous on the host for data) within
        // one L2 table.
        let (e, run) = match self.table(offset)? {
            None => (0, span - start % span),
            Some((table, i)) => {
                let e = Self::entry_at(&table, i);
                let entries = 1u64 << self.header.l2_bits;
                let mut n = 1;
                while i + n < entries && n * cs < limit {
                    let next = Self::entry_at(&table, i + n);
                    let same = if e == 0 {
                        next == 0
                    } else if e & OFLAG_COMPRESSED != 0 {
                        next & OFLAG_COMPRESSED != 0
                    } else {
                        next & OFLAG_COMPRESSED == 0 && next == e + n * cs
                    };
                    if !same {
                        break;
                    }
                    n += 1;
                }
                (e, n * cs)
            }
        };
        let len = run.min(limit) - in_cluster;
        let kind = if e == 0 {
            ExtentKind::Unallocated { at: None }
        } else if e & OFLAG_COMPRESSED != 0 {
            ExtentKind::Compressed
        } else {
            ExtentKind::Data {
                at: HostRef {
                    file: 0,
                    offset: e | in_cluster,
                },
                recurse: false,
            }
        };
        Ok(Extent { len, kind })
    }

    fn read_compressed(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let cs = self.cluster_size();
        let cb = u32::from(self.header.cluster_bits);
        let mut cluster = vec![0u8; cs as usize];
        let mut pos = 0usize;
        while pos < buf.len() {
            let off = offset + pos as u64;
            let start = off & !(cs - 1);
            let e = self.lookup(start)?;
            let csize = (e >> (63 - cb)) & (cs - 1);
            let coffset = e & ((1u64 << (63 - cb)) - 1);
            let mut packed = vec![0u8; csize as usize];
            self.files[0].read_at(coffset, &mut packed)?;
            if !codec::inflate_raw(&packed, &mut cluster) {
                return Err(Error::Failed(format!(
                    "Could not read compressed cluster at offset {start}: Input/output error"
                )));
            }
            let i = (off - start) as usize;
            let n = (cs as usize - i).min(buf.len() - pos);
            buf[pos..pos + n].copy_from_slice(&cluster[i..i + n]);
            pos += n;
        }
        Ok(())
    }
}
