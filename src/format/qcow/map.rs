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
    let image = super::read_image(&crate::info::bytes::path_of(filename))?;
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

    /// The L2 entry of guest `offset` (0: unallocated).
    fn lookup(&self, offset: u64) -> Result<u64> {
        let cb = u32::from(self.header.cluster_bits);
        let l2b = u32::from(self.header.l2_bits);
        let l1_index = offset >> (cb + l2b);
        if l1_index >= self.l1.len() {
            return Ok(0);
        }
        let e = self.l1.entry(&self.files[0], l1_index)?;
        let l2_offset = u64::from_be_bytes(e[..8].try_into().unwrap_or([0; 8]));
        if l2_offset == 0 {
            return Ok(0);
        }
        let table = self.l2.get(&self.files[0], l2_offset)?;
        let i = (((offset >> cb) & ((1 << l2b) - 1)) * 8) as usize;
        Ok(u64::from_be_bytes(
            table[i..i + 8].try_into().unwrap_or([0; 8]),
        ))
    }
}

impl BlockDriver for QcowDriver {
    fn format_name(&self) -> &'static str {
        "qcow"
    }

    fn virtual_size(&self) -> u64 {
        self.header.size / 512 * 512
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
        let len = (cs - in_cluster).min(max_len);
        let e = self.lookup(offset)?;
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
