//! raw: the virtual disk's bytes, nothing else.

pub mod inspect;
pub mod map;
pub mod writer;

pub use inspect::inspect;

use crate::error::{Error, Result};
use crate::format::create_ctx::{CreateContext, Prealloc};
use crate::image::target::TargetFile;
use crate::options::{OptDesc, SIZE_OPTION};
use crate::progress::Progress;
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// raw's own creation options (the file protocol adds preallocation,
/// nocow and extent_size_hint).
pub const CREATE_OPTIONS: &[OptDesc] = &[SIZE_OPTION];

/// Every format stores sizes in whole 512-byte sectors.
pub const SECTOR_SIZE: u64 = 512;

/// Rounds `size` up to a whole number of sectors.
pub fn round_to_sector(size: u64) -> u64 {
    size.div_ceil(SECTOR_SIZE) * SECTOR_SIZE
}

/// Creates a raw image: a file of the (sector-rounded) size, sparse,
/// fallocated or written with zeros.
pub fn create(ctx: &CreateContext) -> Result<()> {
    let prealloc = ctx.preallocation(&[Prealloc::Off, Prealloc::Falloc, Prealloc::Full])?;
    let size = round_to_sector(ctx.size);
    let path = ctx.path();
    let file = ctx.create_file(path)?;
    extend_file(ctx, &file, path, 0, size, prealloc)
}

/// Grows `file` from `from` to `to` bytes the way qemu's file driver does
/// for `prealloc`: a sparse truncate, `posix_fallocate`, or zeros written.
pub fn extend_file(
    ctx: &CreateContext,
    file: &TargetFile,
    path: &Path,
    from: u64,
    to: u64,
    prealloc: Prealloc,
) -> Result<()> {
    let too_large = |e: std::io::Error| {
        if e.raw_os_error() == Some(libc::EFBIG) || e.raw_os_error() == Some(libc::EINVAL) {
            ctx.failed("The image size is too large for file format 'raw'")
        } else {
            Error::io(format!("{}: Could not resize file", path.display()), e)
        }
    };
    match prealloc {
        Prealloc::Off | Prealloc::Metadata => {
            file.set_len(to).map_err(too_large)?;
            // A device had its first sector zeroed when it was opened.
            if from == 0 && to > 0 && !file.is_device() {
                allocate_first_block(file, to)
                    .map_err(|e| Error::io(format!("{}: Could not write", path.display()), e))?;
            }
            Ok(())
        }
        Prealloc::Falloc => {
            file.set_len(to).map_err(too_large)?;
            fallocate(file, from, to - from).map_err(|e| {
                Error::io(format!("{}: Could not preallocate data", path.display()), e)
            })
        }
        Prealloc::Full => {
            file.set_len(from).map_err(too_large)?;
            write_zeros(ctx, file, path, from, to - from)
        }
    }
}

/// qemu's file driver writes zeros over the first block of a new sparse
/// file ("optimize future alignment probing"): 512 bytes when the file is
/// smaller than 4 KiB, else 4 KiB. Doing the same keeps the allocation
/// (st_blocks) of diskforge's files equal to qemu-img's.
fn allocate_first_block(file: &File, size: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    const MAX_BLOCKSIZE: u64 = 4096;
    let n = if size < MAX_BLOCKSIZE {
        SECTOR_SIZE
    } else {
        MAX_BLOCKSIZE
    };
    file.write_all_at(&vec![0u8; n as usize], 0)
}

/// `posix_fallocate` over a byte range.
pub fn fallocate(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    if len == 0 {
        return Ok(());
    }
    let (Ok(off), Ok(l)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(std::io::Error::from_raw_os_error(libc::EFBIG));
    };
    // SAFETY: plain syscall on a valid, open descriptor.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), off, l) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(rc))
    }
}

/// Size of the zero buffer for full preallocation.
const ZERO_CHUNK: usize = 4 << 20;

/// Writes `len` zero bytes at `offset`, with a progress bar.
pub fn write_zeros(
    ctx: &CreateContext,
    file: &File,
    path: &Path,
    offset: u64,
    len: u64,
) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let progress = Progress::new(ctx.quiet, len, "preallocating");
    let zeros = vec![0u8; ZERO_CHUNK.min(len as usize).max(1)];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], offset + done)
            .map_err(|e| Error::io(format!("{}: Could not write zeros", path.display()), e))?;
        done += n as u64;
        progress.advance(n as u64);
    }
    let mut f = file;
    f.flush().map_err(Error::io_at(path, "Could not flush"))?;
    Ok(())
}
