//! Reading a raw image: guest offset = host offset; holes (`SEEK_HOLE`)
//! read as zeros, as qemu's `file` driver reports them.

use crate::error::Result;
use crate::image::{Backing, BlockDriver, Extent, ExtentKind, HostFile, HostRef, Layer};

/// An opened raw image.
pub struct RawDriver {
    files: Vec<HostFile>,
}

/// Opens the raw image `filename`.
pub fn open(filename: &str) -> Result<Layer> {
    Ok(Box::new(RawDriver {
        files: vec![HostFile::open(filename)?],
    }))
}

impl BlockDriver for RawDriver {
    fn format_name(&self) -> &'static str {
        "raw"
    }

    fn virtual_size(&self) -> u64 {
        self.files[0].sector_len()
    }

    fn files(&self) -> &[HostFile] {
        &self.files
    }

    fn backing(&self) -> Option<&Backing> {
        None
    }

    fn map(&self, offset: u64, max_len: u64) -> Result<Extent> {
        let st = self.files[0].status(offset, max_len);
        let at = HostRef { file: 0, offset };
        Ok(Extent {
            len: st.len,
            kind: if st.data {
                ExtentKind::Data { at, recurse: false }
            } else {
                ExtentKind::Zero { at: Some(at) }
            },
        })
    }

    fn read_compressed(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.files[0].read_at(offset, buf)
    }
}
