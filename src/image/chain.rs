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

/// The backing file name resolved as qemu does: relative to the directory
/// part of the image's name (kept as given, not canonicalised); an
/// absolute name or one with a protocol prefix (`nbd:...`) as it is.
/// The one backing-name resolver (info, create, the read path).
pub fn full_backing_filename(image: &str, backing: &str) -> String {
    if backing.starts_with('/') || has_protocol(backing) {
        return backing.to_string();
    }
    match image.rfind('/') {
        Some(i) => format!("{}{}", &image[..=i], backing),
        None => backing.to_string(),
    }
}

/// qemu's `path_has_protocol`: a colon before any slash.
fn has_protocol(name: &str) -> bool {
    name.find([':', '/'])
        .is_some_and(|i| name[i..].starts_with(':'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Backing, Extent, HostFile};

    /// A layer of fixed extents (no host files: only map is used).
    struct Fake {
        size: u64,
        extents: Vec<(u64, ExtentKind)>,
    }

    impl BlockDriver for Fake {
        fn format_name(&self) -> &'static str {
            "fake"
        }
        fn virtual_size(&self) -> u64 {
            self.size
        }
        fn files(&self) -> &[HostFile] {
            &[]
        }
        fn backing(&self) -> Option<&Backing> {
            None
        }
        fn supports_backing(&self) -> bool {
            true
        }
        fn map(&self, offset: u64, max_len: u64) -> Result<Extent> {
            let mut start = 0;
            for &(len, kind) in &self.extents {
                if offset < start + len {
                    return Ok(Extent {
                        len: (start + len - offset).min(max_len),
                        kind,
                    });
                }
                start += len;
            }
            Ok(Extent {
                len: max_len,
                kind: ExtentKind::Unallocated { at: None },
            })
        }
        fn read_compressed(&self, _offset: u64, _buf: &mut [u8]) -> Result<()> {
            Ok(())
        }
    }

    const U: ExtentKind = ExtentKind::Unallocated { at: None };
    const Z: ExtentKind = ExtentKind::Zero { at: None };
    const C: ExtentKind = ExtentKind::Compressed;

    #[test]
    fn block_status_walks_the_chain() {
        let top = Fake {
            size: 4096,
            extents: vec![(512, Z), (512, U), (512, C), (2560, U)],
        };
        let base = Fake {
            size: 2048,
            extents: vec![(1024, U), (512, C), (512, Z)],
        };
        let chain = Chain {
            layers: vec![Box::new(top), Box::new(base)],
        };
        // (offset, len, depth, present, zero, data, compressed)
        let cases = [
            (0, 512, 0, true, true, false, false),
            (512, 512, 1, false, true, false, false),
            (1024, 512, 0, true, false, true, true),
            (1536, 512, 1, true, true, false, false),
            (2048, 2048, 0, false, true, false, false),
        ];
        for (offset, len, depth, present, zero, data, compressed) in cases {
            let s = chain.block_status(offset, 4096 - offset).unwrap();
            assert_eq!(
                (s.len, s.depth, s.present, s.zero, s.data, s.compressed),
                (len, depth, present, zero, data, compressed),
                "offset {offset}"
            );
        }
    }

    #[test]
    fn backing_names_resolve_like_qemu() {
        assert_eq!(full_backing_filename("a.qcow2", "b.raw"), "b.raw");
        assert_eq!(
            full_backing_filename("sub/top.qcow2", "../mid.qcow2"),
            "sub/../mid.qcow2"
        );
        assert_eq!(
            full_backing_filename("sub/../mid.qcow2", "base.raw"),
            "sub/../base.raw"
        );
        assert_eq!(full_backing_filename("sub/a", "/abs/b"), "/abs/b");
        // A protocol name is taken as it is, as qemu's path_has_protocol.
        assert_eq!(
            full_backing_filename("sub/a", "nbd:localhost:10809"),
            "nbd:localhost:10809"
        );
        assert_eq!(full_backing_filename("sub/a", "x/y:z"), "sub/x/y:z");
    }
}
