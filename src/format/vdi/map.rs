//! Reading a vdi image: the block map (unallocated and discarded
//! blocks read as zeros), read in pages, never whole.

use super::header::{VDI_TYPE_STATIC, VdiHeader};
use crate::error::Result;
use crate::image::cache::PagedTable;
use crate::image::{Backing, BlockDriver, Extent, ExtentKind, HostFile, HostRef, Layer};

/// Block map entries from here on are unallocated (0xffffffff) or
/// discarded (0xfffffffe).
const VDI_DISCARDED: u32 = 0xffff_fffe;

/// An opened vdi image.
pub struct VdiDriver {
    files: Vec<HostFile>,
    header: VdiHeader,
    bmap: PagedTable,
}

/// Opens the vdi image `filename` (checked as qemu checks it).
pub fn open(filename: &str) -> Result<Layer> {
    let header = super::read_header(&crate::qapi::bytes::path_of(filename))?;
    let file = HostFile::open(filename)?;
    let bmap = PagedTable::new(
        u64::from(header.offset_bmap),
        u64::from(header.blocks_in_image),
        4,
    );
    Ok(Box::new(VdiDriver {
        files: vec![file],
        header,
        bmap,
    }))
}

impl VdiDriver {
    fn entry(&self, block: u64) -> Result<u32> {
        if block >= self.bmap.len() {
            return Ok(u32::MAX);
        }
        let e = self.bmap.entry(&self.files[0], block)?;
        Ok(u32::from_le_bytes([e[0], e[1], e[2], e[3]]))
    }
}

impl BlockDriver for VdiDriver {
    fn format_name(&self) -> &'static str {
        "vdi"
    }

    fn virtual_size(&self) -> u64 {
        self.header.disk_size
    }

    fn files(&self) -> &[HostFile] {
        &self.files
    }

    fn backing(&self) -> Option<&Backing> {
        None
    }

    fn map(&self, offset: u64, max_len: u64) -> Result<Extent> {
        let bs = u64::from(self.header.block_size);
        let block = offset / bs;
        let in_block = offset % bs;
        let len = (bs - in_block).min(max_len);
        let e = self.entry(block)?;
        if e >= VDI_DISCARDED {
            return Ok(Extent {
                len,
                kind: ExtentKind::Zero { at: None },
            });
        }
        Ok(Extent {
            len,
            kind: ExtentKind::Data {
                at: HostRef {
                    file: 0,
                    offset: u64::from(self.header.offset_data) + u64::from(e) * bs + in_block,
                },
                recurse: self.header.image_type == VDI_TYPE_STATIC,
            },
        })
    }

    fn read_compressed(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let _ = offset;
        buf.fill(0);
        Ok(())
    }
}
