//! A chain of opened layers (top first): qemu's block status with depth,
//! and guest reads that fall through unallocated areas to the backing
//! layers.

use super::{BlockDriver, ExtentKind, HostRef};
use crate::error::{Error, Result};

/// One opened layer of a chain.
pub type Layer = Box<dyn BlockDriver>;

/// An image and its backing layers, top first.
pub struct Chain {
    pub layers: Vec<Layer>,
}

/// The block status of the chain over `[offset, offset + len)`, as
/// `qemu-img map` computes it for one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub len: u64,
    /// The layer that answered (0 the top).
    pub depth: usize,
    /// qemu's `BDRV_BLOCK_ALLOCATED` in that layer.
    pub present: bool,
    pub zero: bool,
    pub data: bool,
    pub compressed: bool,
    /// The host place, in `layers[depth].files()[at.file]`.
    pub at: Option<HostRef>,
}

/// What one layer says about a range (qemu's `bdrv_co_block_status`).
struct LayerStatus {
    len: u64,
    data: bool,
    zero: bool,
    allocated: bool,
    compressed: bool,
    at: Option<HostRef>,
}

impl Chain {
    /// The guest-visible size: the top layer's.
    pub fn virtual_size(&self) -> u64 {
        self.layers.first().map_or(0, |l| l.virtual_size())
    }

    /// The top layer.
    pub fn top(&self) -> &dyn BlockDriver {
        self.layers[0].as_ref()
    }

    /// The name of the host file a [`Status`] points into.
    pub fn file_name(&self, depth: usize, at: HostRef) -> &str {
        self.layers[depth]
            .files()
            .get(usize::from(at.file))
            .map_or("", |f| f.name())
    }

    fn layer_map(&self, i: usize, offset: u64, max_len: u64) -> Result<super::Extent> {
        let layer = &self.layers[i];
        let ext = layer.map(offset, max_len)?;
        if ext.len == 0 {
            return Err(Error::Failed(format!(
                "{}: empty extent at offset {offset}",
                layer.files()[0].name()
            )));
        }
        Ok(super::Extent {
            len: ext.len.min(max_len),
            kind: ext.kind,
        })
    }

    fn layer_status(&self, i: usize, offset: u64, max_len: u64) -> Result<LayerStatus> {
        let layer = &self.layers[i];
        let size = layer.virtual_size();
        let n = max_len.min(size - offset);
        let ext = self.layer_map(i, offset, n)?;
        let mut s = LayerStatus {
            len: ext.len,
            data: false,
            zero: false,
            allocated: false,
            compressed: false,
            at: None,
        };
        match ext.kind {
            ExtentKind::Data { at, recurse } => {
                s.data = true;
                s.allocated = true;
                s.at = Some(at);
                if recurse {
                    let file = layer.files().get(usize::from(at.file)).ok_or_else(|| {
                        Error::Failed(format!("bad file index at offset {offset}"))
                    })?;
                    let end = file.sector_len();
                    if at.offset >= end {
                        s.zero = true;
                    } else {
                        let st = file.status(at.offset, s.len.min(end - at.offset));
                        if at.offset + st.len == end && !st.data {
                            s.zero = true;
                        } else {
                            s.len = st.len;
                            s.zero = !st.data;
                        }
                    }
                }
            }
            ExtentKind::Zero { at } => {
                s.zero = true;
                s.allocated = true;
                s.at = at;
            }
            ExtentKind::Compressed => {
                s.data = true;
                s.compressed = true;
                s.allocated = true;
            }
            ExtentKind::Unallocated { at } => {
                s.at = at;
                match self.layers.get(i + 1) {
                    None => s.zero = true,
                    Some(b) if offset >= b.virtual_size() => s.zero = true,
                    Some(_) => {}
                }
            }
        }
        Ok(s)
    }

    /// qemu-img map's block status at `offset` (below the virtual size):
    /// the first layer that has data or zeros answers.
    pub fn block_status(&self, offset: u64, max_len: u64) -> Result<Status> {
        let mut n = max_len;
        let mut depth = 0;
        loop {
            let s = self.layer_status(depth, offset, n)?;
            n = s.len;
            if s.data || s.zero || depth + 1 >= self.layers.len() {
                return Ok(Status {
                    len: n,
                    depth,
                    present: s.allocated,
                    zero: s.zero,
                    data: s.data,
                    compressed: s.compressed,
                    at: s.at,
                });
            }
            depth += 1;
            n = n.min(self.layers[depth].virtual_size() - offset);
        }
    }

    /// Reads guest bytes at `offset`; past the virtual size reads zeros.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let mut pending = vec![(0usize, offset, 0usize, buf.len())];
        // An explicit stack of (layer, guest offset, start, end in buf):
        // no recursion however deep the chain.
        while let Some((i, off, start, end)) = pending.pop() {
            self.read_layer(i, off, &mut buf[start..end], start, &mut pending)?;
        }
        Ok(())
    }

    fn read_layer(
        &self,
        i: usize,
        offset: u64,
        buf: &mut [u8],
        base: usize,
        pending: &mut Vec<(usize, u64, usize, usize)>,
    ) -> Result<()> {
        let layer = &self.layers[i];
        let size = layer.virtual_size();
        let mut pos = 0usize;
        while pos < buf.len() {
            let off = offset + pos as u64;
            if off >= size {
                buf[pos..].fill(0);
                break;
            }
            let n = ((buf.len() - pos) as u64).min(size - off);
            let ext = self.layer_map(i, off, n)?;
            let len = ext.len as usize;
            let chunk = &mut buf[pos..pos + len];
            match ext.kind {
                ExtentKind::Data { at, .. } => {
                    let file = layer
                        .files()
                        .get(usize::from(at.file))
                        .ok_or_else(|| Error::Failed(format!("bad file index at offset {off}")))?;
                    file.read_at(at.offset, chunk)?;
                }
                ExtentKind::Zero { .. } => chunk.fill(0),
                ExtentKind::Compressed => layer.read_compressed(off, chunk)?,
                ExtentKind::Unallocated { .. } => {
                    chunk.fill(0);
                    if i + 1 < self.layers.len() {
                        pending.push((i + 1, off, base + pos, base + pos + len));
                    }
                }
            }
            pos += len;
        }
        Ok(())
    }
}
