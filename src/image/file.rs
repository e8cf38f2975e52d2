//! [`HostFile`]: a host file opened for reading, as qemu's `file` driver
//! sees it: reads past the end return zeros, its length counts in whole
//! sectors, and holes are found with `SEEK_DATA`/`SEEK_HOLE`.

use crate::error::{Cause, Error, Op, Result};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};

/// A regular file's size, or for a device the position of its end.
pub fn file_length(file: &File, meta: &std::fs::Metadata) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    if meta.is_file() {
        return Ok(meta.len());
    }
    let mut f = file;
    f.seek(SeekFrom::End(0))
}

/// A host file opened read-only; safe to `pread` from many threads. The
/// one way diskforge opens a file to read it (an image, a file an image
/// names, a file to probe). For fuzzing and tests it can also hold an
/// image's bytes in memory ([`HostFile::from_bytes`]).
#[derive(Debug)]
pub struct HostFile {
    source: Source,
    name: String,
    len: u64,
    dev: u64,
    ino: u64,
    /// Bytes allocated on the host (`st_blocks` * 512).
    allocated: u64,
    /// A regular file (as opposed to a block or character device).
    regular: bool,
}

#[derive(Debug)]
enum Source {
    File(File),
    Memory(Vec<u8>),
}

/// What the host file has at an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostStatus {
    /// True for data, false for a hole (reads as zeros).
    pub data: bool,
    /// Bytes from the offset with the same answer (at least 1).
    pub len: u64,
}

impl HostFile {
    /// Opens `name` read-only, as qemu's `file` driver would, with its
    /// messages. FIFOs, sockets and directories are refused before they
    /// are opened (an open of a FIFO would block; qemu-img hangs on one).
    pub fn open(name: &str) -> Result<HostFile> {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        let path = crate::qapi::bytes::path_of(name);
        let openable = |m: &std::fs::Metadata| {
            let t = m.file_type();
            t.is_file() || t.is_block_device() || t.is_char_device()
        };
        let not_regular = || Error::image_error(name, Op::Open, None, Cause::NotRegular);
        if let Ok(m) = std::fs::metadata(&path)
            && !openable(&m)
        {
            return Err(not_regular());
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| Error::open_io(name, e))?;
        let meta = file.metadata().map_err(|e| Error::open_io(name, e))?;
        if !openable(&meta) {
            return Err(not_regular());
        }
        let len = file_length(&file, &meta).map_err(|e| Error::open_io(name, e))?;
        Ok(HostFile {
            source: Source::File(file),
            name: name.to_string(),
            len,
            dev: meta.dev(),
            ino: meta.ino(),
            allocated: meta.blocks().saturating_mul(512),
            regular: meta.is_file(),
        })
    }

    /// [`HostFile::open`] for the file at `path`.
    pub fn open_path(path: &std::path::Path) -> Result<HostFile> {
        HostFile::open(&crate::name::of_path(path))
    }

    /// An image held in memory, read exactly as a file with these bytes.
    pub fn from_bytes(name: &str, data: Vec<u8>) -> HostFile {
        HostFile {
            len: data.len() as u64,
            source: Source::Memory(data),
            name: name.to_string(),
            dev: 0,
            ino: 0,
            allocated: 0,
            regular: true,
        }
    }

    /// The open file (none for bytes in memory), e.g. to lock it.
    pub fn as_file(&self) -> Option<&File> {
        match &self.source {
            Source::File(f) => Some(f),
            Source::Memory(_) => None,
        }
    }

    /// Bytes the file occupies on the host.
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    /// True for a regular file, false for a device.
    pub fn is_regular(&self) -> bool {
        self.regular
    }

    /// The name the file was opened by (qemu's node file name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The length as qemu's block layer sees it: whole sectors.
    pub fn sector_len(&self) -> u64 {
        self.len.div_ceil(512) * 512
    }

    /// Device and inode: the identity used to detect loops.
    pub fn identity(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    /// Fills `buf` from `offset`; bytes past the end read as zeros (as
    /// qemu's block layer reads), so a header field pointing past the end
    /// costs a bounded read.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let avail = self.len.saturating_sub(offset).min(buf.len() as u64) as usize;
        buf[avail..].fill(0);
        let file = match &self.source {
            Source::Memory(data) => {
                if avail > 0 {
                    let start = offset as usize;
                    buf[..avail].copy_from_slice(&data[start..start + avail]);
                }
                return Ok(());
            }
            Source::File(file) => file,
        };
        let mut done = 0;
        while done < avail {
            match file.read_at(&mut buf[done..avail], offset + done as u64) {
                Ok(0) => {
                    buf[done..avail].fill(0);
                    break;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::read_io(&self.name, offset, buf.len() as u64, e)),
            }
        }
        Ok(())
    }

    /// `len` bytes from `offset` (zero-filled past the end). `len` must
    /// already be bounded by the caller.
    pub fn read_vec(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.read_at(offset, &mut v)?;
        Ok(v)
    }

    /// Data or hole at `offset`, as qemu's `file` driver reports it:
    /// past the end of the file (up to the sector-rounded length) is a
    /// hole; without `SEEK_DATA` support everything is data. The answer
    /// is clamped to `max_len` (at least 1).
    pub fn status(&self, offset: u64, max_len: u64) -> HostStatus {
        let max_len = max_len.max(1);
        let clamp = |data: bool, len: u64| HostStatus {
            data,
            len: len.clamp(1, max_len),
        };
        let Ok(start) = i64::try_from(offset) else {
            return clamp(false, max_len);
        };
        let Source::File(file) = &self.source else {
            return clamp(offset < self.len, max_len);
        };
        let fd = std::os::unix::io::AsRawFd::as_raw_fd(file);
        // SAFETY: lseek on a file descriptor we own; no memory involved.
        let data = unsafe { libc::lseek(fd, start, libc::SEEK_DATA) };
        if data < 0 {
            let err = std::io::Error::last_os_error().raw_os_error();
            // ENXIO: a trailing hole; anything else: no information.
            return clamp(err != Some(libc::ENXIO), max_len);
        }
        if data < start {
            return clamp(true, max_len);
        }
        if data > start {
            return clamp(false, (data - start) as u64);
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, start, libc::SEEK_HOLE) };
        if hole <= start {
            return clamp(true, max_len);
        }
        clamp(true, (hole - start) as u64)
    }
}
