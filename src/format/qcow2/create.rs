//! Writing a new qcow2 image byte for byte as qemu-img 10 does.
//!
//! The options are checked in qemu's order with qemu's messages
//! (`qcow2_co_create`), the cluster layout comes from [`Layout`] (a replay
//! of qemu's allocator), and the bytes are then written in one pass in
//! file order, in large writes, with the image's metadata generated on
//! the fly (nothing proportional to the virtual size is buffered).
//!
//! Cluster use of the simplest image (no preallocation): cluster 0 header
//! and extensions, 1 refcount table, 2 the first refcount block, 3.. the
//! L1 table (the file ends with the L1 table, not padded to a cluster).

use super::alloc::{Fill, Geometry, Layout, LayoutError, Mode};
use super::header::{
    AUTOCLEAR_DATA_FILE_RAW, COMPAT_LAZY_REFCOUNTS, COMPRESSION_ZLIB, COMPRESSION_ZSTD,
    EXT_BACKING_FORMAT, EXT_DATA_FILE, Extension, Header, INCOMPAT_COMPRESSION, INCOMPAT_DATA_FILE,
    INCOMPAT_EXTL2, V3_HEADER_LENGTH,
};
use crate::error::{Error, Result};
use crate::format::create_ctx::{CreateContext, Prealloc};
use crate::image::target::TargetFile;
use crate::progress::Progress;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// L1/L2 entry flag: "the refcount of the cluster is exactly one".
const OFLAG_COPIED: u64 = 1 << 63;
/// Smallest and largest cluster size qemu accepts.
const MIN_CLUSTER_SIZE: u64 = 512;
const MAX_CLUSTER_SIZE: u64 = 2 << 20;
/// Smallest cluster size with extended L2 entries (32 subclusters of 512).
const MIN_EXTL2_CLUSTER_SIZE: u64 = 16384;
/// Longest backing file name qemu stores.
const MAX_BACKING_NAME: usize = 1023;
/// Bytes gathered before one write. Writes of 1 MiB are as few as
/// needed and still fast: larger ones were measured slower here (page
/// cache write-back of big single writes).
const WRITE_CHUNK: usize = 1 << 20;
/// Work (bytes to write) above which a progress bar is worth showing.
const PROGRESS_THRESHOLD: u64 = 64 << 20;

/// The checked creation options.
#[derive(Debug, Clone)]
pub struct Qcow2Options {
    pub version: u32,
    pub geometry: Geometry,
    pub lazy_refcounts: bool,
    pub compression_type: u8,
    pub mode: Mode,
    pub data_file: Option<String>,
    pub data_file_raw: bool,
    pub backing_file: Option<String>,
    pub backing_fmt: Option<String>,
}

/// Reads and checks the qcow2 options as `qcow2_co_create` does.
pub fn parse_options(ctx: &CreateContext) -> Result<Qcow2Options> {
    let o = ctx.options;
    let version = match o.get_str("compat") {
        None | Some("1.1") | Some("v3") => 3,
        Some("0.10") | Some("v2") => 2,
        Some(other) => {
            return Err(ctx.usage(format!(
                "Parameter 'version' does not accept value '{other}'"
            )));
        }
    };
    let prealloc = ctx.preallocation(&[
        Prealloc::Off,
        Prealloc::Metadata,
        Prealloc::Falloc,
        Prealloc::Full,
    ])?;
    let compression_type = match o.get_str("compression_type") {
        None | Some("zlib") => COMPRESSION_ZLIB,
        Some("zstd") => COMPRESSION_ZSTD,
        Some(other) => {
            return Err(ctx.usage(format!(
                "Parameter 'compression-type' does not accept value '{other}'"
            )));
        }
    };
    let extended_l2 = ctx.flag("extended_l2", false);
    if extended_l2 && version < 3 {
        return Err(ctx.usage(
            "Extended L2 entries are only supported with compatibility level 1.1 and above (use version=v3 or greater)",
        ));
    }
    let cluster_size = o.get_number("cluster_size").unwrap_or(65536);
    if !(MIN_CLUSTER_SIZE..=MAX_CLUSTER_SIZE).contains(&cluster_size)
        || !cluster_size.is_power_of_two()
    {
        return Err(ctx.usage("Cluster size must be a power of two between 512 and 2048k"));
    }
    if extended_l2 && cluster_size < MIN_EXTL2_CLUSTER_SIZE {
        return Err(ctx.usage(format!(
            "Extended L2 entries are only supported with cluster sizes of at least {MIN_EXTL2_CLUSTER_SIZE} bytes"
        )));
    }
    let backing_file = ctx.backing_file().map(str::to_string);
    if backing_file.is_some() && prealloc != Prealloc::Off && !extended_l2 {
        return Err(ctx.usage(
            "Backing file and preallocation can only be used at the same time if extended_l2 is on",
        ));
    }
    let lazy_refcounts = ctx.flag("lazy_refcounts", false);
    if version < 3 && lazy_refcounts {
        return Err(ctx.usage(
            "Lazy refcounts only supported with compatibility level 1.1 and above (use version=v3 or greater)",
        ));
    }
    let refcount_bits = o.get_number("refcount_bits").unwrap_or(16);
    if refcount_bits > 64 || !refcount_bits.is_power_of_two() {
        return Err(ctx.usage("Refcount width must be a power of two and may not exceed 64 bits"));
    }
    if version < 3 && refcount_bits != 16 {
        return Err(ctx.usage(
            "Different refcount widths than 16 bits require compatibility level 1.1 or above (use version=v3 or greater)",
        ));
    }
    let data_file = o.get_str("data_file").map(str::to_string);
    let data_file_raw = ctx.flag("data_file_raw", false);
    if data_file_raw && data_file.is_none() {
        return Err(ctx.usage("data-file-raw requires data-file"));
    }
    if data_file_raw && backing_file.is_some() {
        return Err(ctx.usage("Backing file and data-file-raw cannot be used at the same time"));
    }
    if data_file.is_some() && version < 3 {
        return Err(ctx.usage(
            "External data files are only supported with compatibility level 1.1 and above (use version=v3 or greater)",
        ));
    }
    if compression_type != COMPRESSION_ZLIB && version < 3 {
        return Err(ctx.usage(
            "Non-zlib compression type is only supported with compatibility level 1.1 and above (use version=v3 or greater)",
        ));
    }
    let mode = match prealloc {
        Prealloc::Off if data_file_raw => Mode::Metadata,
        Prealloc::Off => Mode::Off,
        Prealloc::Metadata => Mode::Metadata,
        Prealloc::Falloc => Mode::Falloc,
        Prealloc::Full => Mode::Full,
    };
    Ok(Qcow2Options {
        version,
        geometry: Geometry {
            cluster_bits: cluster_size.trailing_zeros(),
            refcount_order: refcount_bits.trailing_zeros(),
            extended_l2,
        },
        lazy_refcounts,
        compression_type,
        mode,
        data_file,
        data_file_raw,
        backing_file,
        backing_fmt: ctx.backing_fmt().map(str::to_string),
    })
}

/// Creates a qcow2 image.
pub fn create(ctx: &CreateContext) -> Result<()> {
    let opts = parse_options(ctx)?;
    let size = crate::format::raw::round_to_sector(ctx.size);
    let path = ctx.path();
    if let Some(b) = &opts.backing_file
        && b.len() > MAX_BACKING_NAME
    {
        return Err(ctx.usage(format!(
            "Could not assign backing file '{b}' with format '{}': Invalid argument",
            opts.backing_fmt.as_deref().unwrap_or("")
        )));
    }
    let layout = Layout::build(opts.geometry, size, opts.mode, opts.data_file.is_some());
    let file = ctx.create_file(path)?;
    let layout = match layout {
        Ok(l) => l,
        Err(LayoutError::TooLarge) => {
            return Err(ctx.failed(
                "The image size is too large for file format 'qcow2' (try using a larger cluster size)",
            ));
        }
    };
    let header = header_cluster(&opts, &layout, size).map_err(|with_backing| {
        if with_backing {
            ctx.failed(format!(
                "Could not assign backing file '{}' with format '{}': No space left on device",
                opts.backing_file.as_deref().unwrap_or(""),
                opts.backing_fmt.as_deref().unwrap_or("")
            ))
        } else {
            ctx.failed("Could not update qcow2 header: No space left on device")
        }
    })?;
    let data = match &opts.data_file {
        Some(name) => Some((name.as_str(), ctx.create_file(Path::new(name))?)),
        None => None,
    };
    write_image(ctx, &file, path, &layout, &header)?;
    if let (Some((name, data_file)), Some(d)) = (data, &layout.data_file) {
        write_data_file(ctx.quiet, &data_file, Path::new(name), d)?;
    }
    Ok(())
}

/// The first cluster: header, extensions, end marker, backing file name.
/// `Err(with_backing)` when it does not fit in a cluster: qemu finds out
/// either when it first writes the full header (data file extension,
/// feature table) or when it adds the backing file (`true`).
fn header_cluster(
    opts: &Qcow2Options,
    layout: &Layout,
    size: u64,
) -> std::result::Result<Vec<u8>, bool> {
    let geo = &layout.geo;
    let cs = geo.cluster_size() as usize;
    let mut incompatible = 0;
    if opts.data_file.is_some() {
        incompatible |= INCOMPAT_DATA_FILE;
    }
    if opts.compression_type != COMPRESSION_ZLIB {
        incompatible |= INCOMPAT_COMPRESSION;
    }
    if geo.extended_l2 {
        incompatible |= INCOMPAT_EXTL2;
    }
    let mut header = Header {
        version: opts.version,
        cluster_bits: geo.cluster_bits,
        size,
        l1_size: layout.l1_size as u32,
        l1_table_offset: layout.l1_cluster << geo.cluster_bits,
        refcount_table_offset: layout.reftable_cluster << geo.cluster_bits,
        refcount_table_clusters: layout.reftable_clusters as u32,
        incompatible_features: incompatible,
        compatible_features: if opts.lazy_refcounts {
            COMPAT_LAZY_REFCOUNTS
        } else {
            0
        },
        autoclear_features: if opts.data_file_raw {
            AUTOCLEAR_DATA_FILE_RAW
        } else {
            0
        },
        refcount_order: geo.refcount_order,
        header_length: V3_HEADER_LENGTH,
        compression_type: opts.compression_type,
        ..Header::default()
    };
    let fixed = header.to_bytes().len();
    let mut tail = Vec::new();
    if let Some(name) = &opts.data_file {
        tail.extend(
            Extension {
                kind: EXT_DATA_FILE,
                data: name.as_bytes().to_vec(),
            }
            .to_bytes(),
        );
    }
    if opts.version >= 3 && cs > 4096 {
        tail.extend(Extension::feature_table().to_bytes());
    }
    tail.extend([0u8; 8]);
    if fixed + tail.len() > cs {
        return Err(false);
    }
    if let (Some(_), Some(fmt)) = (&opts.backing_file, &opts.backing_fmt) {
        let ext = Extension {
            kind: EXT_BACKING_FORMAT,
            data: fmt.as_bytes().to_vec(),
        };
        tail.splice(0..0, ext.to_bytes());
    }
    if let Some(b) = &opts.backing_file {
        header.backing_file_offset = (fixed + tail.len()) as u64;
        header.backing_file_size = b.len() as u32;
        tail.extend_from_slice(b.as_bytes());
    }
    let mut out = header.to_bytes();
    out.extend(tail);
    if out.len() > cs {
        return Err(true);
    }
    out.resize(cs, 0);
    Ok(out)
}

/// One piece of the image file to write, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Piece {
    Header,
    RefTable,
    RefBlock(u64),
    L1,
    L2(u64),
    Zeros(u64),
}

/// Gathers adjacent writes into large ones.
struct Sink<'a> {
    file: &'a File,
    path: &'a Path,
    buf: Vec<u8>,
    at: u64,
    progress: Progress,
    /// A chunk of zeros for large zero writes (allocated on first use).
    zero: Vec<u8>,
}

impl<'a> Sink<'a> {
    fn new(file: &'a File, path: &'a Path, progress: Progress) -> Self {
        Sink {
            file,
            path,
            buf: Vec::with_capacity(WRITE_CHUNK),
            at: 0,
            progress,
            zero: Vec::new(),
        }
    }

    fn write_at(&self, data: &[u8], off: u64) -> Result<()> {
        self.file
            .write_all_at(data, off)
            .map_err(|e| Error::io(format!("{}: Could not write", self.path.display()), e))
    }

    fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.write_at(&self.buf, self.at)?;
            self.progress.advance(self.buf.len() as u64);
            self.buf.clear();
        }
        Ok(())
    }

    /// Room for `len` bytes at `off`, zeroed, appended to the pending write.
    fn slot(&mut self, off: u64, len: usize) -> Result<&mut [u8]> {
        if !self.buf.is_empty()
            && (off != self.at + self.buf.len() as u64 || self.buf.len() + len > WRITE_CHUNK)
        {
            self.flush()?;
        }
        if self.buf.is_empty() {
            self.at = off;
        }
        let start = self.buf.len();
        self.buf.resize(start + len, 0);
        Ok(&mut self.buf[start..])
    }

    fn zeros(&mut self, off: u64, len: u64) -> Result<()> {
        if len <= WRITE_CHUNK as u64 / 4 {
            self.slot(off, len as usize)?;
            return Ok(());
        }
        self.flush()?;
        if self.zero.is_empty() {
            self.zero = vec![0u8; WRITE_CHUNK];
        }
        let mut done = 0;
        while done < len {
            let n = (len - done).min(WRITE_CHUNK as u64) as usize;
            self.write_at(&self.zero[..n], off + done)?;
            self.progress.advance(n as u64);
            done += n as u64;
        }
        Ok(())
    }
}

/// Bytes of one refcount entry with value 1 set in `block` at `index`.
fn set_refcount_one(block: &mut [u8], order: u32, index: usize) {
    if order >= 3 {
        let width = 1usize << (order - 3);
        block[index * width + width - 1] = 1;
    } else {
        let per_byte = 8usize >> order;
        let shift = (index % per_byte) << order;
        block[index / per_byte] |= 1 << shift;
    }
}

fn write_image(
    ctx: &CreateContext,
    file: &TargetFile,
    path: &Path,
    layout: &Layout,
    header: &[u8],
) -> Result<()> {
    let geo = layout.geo;
    let cs = geo.cluster_size();
    let bits = geo.cluster_bits;
    let mut pieces: Vec<(u64, Piece)> = vec![
        (0, Piece::Header),
        (layout.reftable_cluster << bits, Piece::RefTable),
    ];
    for (i, &b) in layout.reftable.iter().enumerate() {
        if b != 0 {
            pieces.push((b << bits, Piece::RefBlock(i as u64)));
        }
    }
    if layout.l1_size > 0 {
        pieces.push((layout.l1_cluster << bits, Piece::L1));
    }
    for (i, &c) in layout.l2.iter().enumerate() {
        if c != 0 {
            pieces.push((c << bits, Piece::L2(i as u64)));
        }
    }
    if let Some((off, len)) = layout.cow_tail {
        pieces.push((off, Piece::Zeros(len)));
    }
    if let Some((Fill::Zeros, start, end)) = layout.fill {
        pieces.push((start, Piece::Zeros(end - start)));
    }
    pieces.sort_unstable();

    let piece_len = |p: &Piece| -> u64 {
        match *p {
            Piece::Header | Piece::RefBlock(_) | Piece::L2(_) => cs,
            Piece::RefTable => layout.reftable_clusters * cs,
            Piece::L1 => layout.l1_size * 8,
            Piece::Zeros(n) => n,
        }
    };
    let total: u64 = pieces.iter().map(|(_, p)| piece_len(p)).sum();
    let progress = if total >= PROGRESS_THRESHOLD {
        Progress::new(ctx.quiet, total, "Formatting")
    } else {
        Progress::hidden()
    };
    // Like qemu, give the file its final size before writing zeros into
    // it: the file system then allocates the known length at once.
    if matches!(layout.fill, Some((Fill::Zeros, _, _))) {
        file.set_len(layout.file_len)
            .map_err(|e| Error::io(format!("{}: Could not resize", path.display()), e))?;
    }
    let mut sink = Sink::new(file, path, progress);

    // Freed refcount tables first: whatever is later written over them wins.
    for t in &layout.stale {
        let mut buf = vec![0u8; (t.clusters * cs) as usize];
        for (i, &e) in t.entries.iter().enumerate() {
            if e != 0 && (i + 1) * 8 <= buf.len() {
                buf[i * 8..i * 8 + 8].copy_from_slice(&(e << bits).to_be_bytes());
            }
        }
        sink.write_at(&buf, t.cluster << bits)?;
    }

    let rbs = geo.refblock_entries();
    let l2_entries = geo.l2_entries();
    let l2e = geo.l2_entry_size() as usize;
    for (off, piece) in &pieces {
        let off = *off;
        match *piece {
            Piece::Header => sink.slot(0, cs as usize)?.copy_from_slice(header),
            Piece::RefTable => {
                let mut done = 0usize;
                let entries = &layout.reftable;
                while done < entries.len() {
                    let n = (entries.len() - done).min(WRITE_CHUNK / 8);
                    let buf = sink.slot(off + done as u64 * 8, n * 8)?;
                    for (k, &e) in entries[done..done + n].iter().enumerate() {
                        if e != 0 {
                            buf[k * 8..k * 8 + 8].copy_from_slice(&(e << bits).to_be_bytes());
                        }
                    }
                    done += n;
                }
            }
            Piece::RefBlock(i) => {
                let first = i * rbs;
                let order = geo.refcount_order;
                let buf = sink.slot(off, cs as usize)?;
                layout.for_each_used(first, first + rbs, |a, b| {
                    for c in a..b {
                        set_refcount_one(buf, order, (c - first) as usize);
                    }
                });
            }
            Piece::L1 => {
                let mut done = 0u64;
                while done < layout.l1_size {
                    let n = (layout.l1_size - done).min((WRITE_CHUNK / 8) as u64);
                    let buf = sink.slot(off + done * 8, (n * 8) as usize)?;
                    for k in 0..n {
                        let c = layout.l2.get((done + k) as usize).copied().unwrap_or(0);
                        if c != 0 {
                            let e = (c << bits) | OFLAG_COPIED;
                            let p = (k * 8) as usize;
                            buf[p..p + 8].copy_from_slice(&e.to_be_bytes());
                        }
                    }
                    done += n;
                }
            }
            Piece::L2(t) => {
                let first = t * l2_entries;
                let last = first + l2_entries;
                let mut r = layout.first_run_after(first);
                let buf = sink.slot(off, cs as usize)?;
                while let Some(run) = layout.runs.get(r) {
                    if run.guest >= last {
                        break;
                    }
                    let a = run.guest.max(first);
                    let b = (run.guest + run.count).min(last);
                    for g in a..b {
                        let e = ((run.host + (g - run.guest)) << bits) | OFLAG_COPIED;
                        let p = (g - first) as usize * l2e;
                        buf[p..p + 8].copy_from_slice(&e.to_be_bytes());
                    }
                    r += 1;
                }
            }
            Piece::Zeros(n) => sink.zeros(off, n)?,
        }
    }
    sink.flush()?;
    sink.progress.finish();
    if let Some((Fill::Falloc, start, end)) = layout.fill {
        fallocate(file, path, start, end - start)?;
    }
    file.set_len(layout.file_len)
        .map_err(|e| Error::io(format!("{}: Could not resize", path.display()), e))?;
    Ok(())
}

fn write_data_file(
    quiet: bool,
    file: &TargetFile,
    path: &Path,
    d: &super::alloc::DataFileLayout,
) -> Result<()> {
    let progress = match d.fill {
        Some((Fill::Zeros, start, end)) if end - start >= PROGRESS_THRESHOLD => {
            Progress::new(quiet, end - start, "Preallocating")
        }
        _ => Progress::hidden(),
    };
    let mut sink = Sink::new(file, path, progress);
    if let Some((off, len)) = d.first_block {
        sink.zeros(off, len)?;
    }
    if let Some((off, len)) = d.cow_tail {
        sink.zeros(off, len)?;
    }
    match d.fill {
        Some((Fill::Zeros, start, end)) => sink.zeros(start, end - start)?,
        Some((Fill::Falloc, start, end)) => {
            sink.flush()?;
            fallocate(file, path, start, end - start)?;
        }
        None => {}
    }
    sink.flush()?;
    file.set_len(d.len)
        .map_err(|e| Error::io(format!("{}: Could not resize", path.display()), e))?;
    Ok(())
}

/// `fallocate(fd, 0, off, len)`, as file-posix does for falloc.
fn fallocate(file: &File, path: &Path, off: u64, len: u64) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    let (Ok(o), Ok(l)) = (i64::try_from(off), i64::try_from(len)) else {
        return Err(Error::Failed(format!(
            "{}: Could not preallocate new data: File too large",
            path.display()
        )));
    };
    // SAFETY: fallocate on an open descriptor we own, with plain integers.
    let r = unsafe { libc::fallocate(file.as_raw_fd(), 0, o, l) };
    if r != 0 {
        return Err(Error::io(
            format!("{}: Could not preallocate new data", path.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}
