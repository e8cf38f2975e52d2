//! Reading a vpc (VHD) image: a fixed disk is its data; a dynamic disk
//! maps blocks through the BAT (read in pages). As in qemu, the sector
//! bitmaps are not consulted for reads: an allocated block is data.

use super::VpcImage;
use super::footer::{BAT_UNALLOCATED, VHD_SECTOR_SIZE};
use crate::error::Result;
use crate::image::cache::PagedTable;
use crate::image::{Backing, BlockDriver, Extent, ExtentKind, HostFile, HostRef, Layer};

/// An opened VHD.
pub struct VpcDriver {
    files: Vec<HostFile>,
    image: VpcImage,
    bat: Option<PagedTable>,
}

/// Opens the VHD `filename` (checked as qemu checks it).
pub fn open(filename: &str) -> Result<Layer> {
    let image = super::read_image(&crate::qapi::bytes::path_of(filename))?;
    let file = HostFile::open(filename)?;
    let bat = image
        .dynamic
        .as_ref()
        .map(|d| PagedTable::new(d.table_offset, u64::from(d.max_table_entries), 4));
    Ok(Box::new(VpcDriver {
        files: vec![file],
        image,
        bat,
    }))
}

impl BlockDriver for VpcDriver {
    fn format_name(&self) -> &'static str {
        "vpc"
    }

    fn virtual_size(&self) -> u64 {
        self.image.virtual_size
    }

    fn files(&self) -> &[HostFile] {
        &self.files
    }

    fn backing(&self) -> Option<&Backing> {
        None
    }

    fn map(&self, offset: u64, max_len: u64) -> Result<Extent> {
        let file = &self.files[0];
        let (Some(bat), Some(d)) = (&self.bat, &self.image.dynamic) else {
            // A fixed disk: its data, holes reading as zeros.
            return Ok(Extent {
                len: max_len,
                kind: ExtentKind::Data {
                    at: HostRef { file: 0, offset },
                    recurse: true,
                },
            });
        };
        let bs = u64::from(d.block_size);
        let block = offset / bs;
        let in_block = offset % bs;
        let len = (bs - in_block).min(max_len);
        let entry = if block < bat.len() {
            let e = bat.entry(file, block)?;
            u32::from_be_bytes([e[0], e[1], e[2], e[3]])
        } else {
            BAT_UNALLOCATED
        };
        if entry == BAT_UNALLOCATED {
            return Ok(Extent {
                len,
                kind: ExtentKind::Zero { at: None },
            });
        }
        let bitmap = (bs / (8 * VHD_SECTOR_SIZE)).div_ceil(512) * 512;
        Ok(Extent {
            len,
            kind: ExtentKind::Data {
                at: HostRef {
                    file: 0,
                    offset: u64::from(entry) * VHD_SECTOR_SIZE + bitmap + in_block,
                },
                recurse: false,
            },
        })
    }

    fn read_compressed(&self, _offset: u64, buf: &mut [u8]) -> Result<()> {
        buf.fill(0);
        Ok(())
    }
}
