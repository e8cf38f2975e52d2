//! [`HostFile`]: a host file opened for reading, as qemu's `file` driver
//! sees it: reads past the end return zeros, its length counts in whole
//! sectors, and holes are found with `SEEK_DATA`/`SEEK_HOLE`.

use crate::error::{Error, Result, describe_io};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};

/// A regular file's size, or for a device the position of its end.
fn file_length(file: &File, meta: &std::fs::Metadata) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    if meta.is_file() {
        return Ok(meta.len());
    }
    let mut f = file;
    f.seek(SeekFrom::End(0))
}

/// A host file opened read-only; safe to `pread` from many threads.
#[derive(Debug)]
pub struct HostFile {
    file: File,
    name: String,
    len: u64,
    dev: u64,
    ino: u64,
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
    /// Opens `name` read-only. FIFOs, sockets and directories are refused
    /// before they are opened (an open of a FIFO would block).
    pub fn open(name: &str) -> Result<HostFile> {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        let path = crate::qapi::bytes::path_of(name);
        let not_regular = || {
            Error::Failed(format!(
                "Could not open '{name}': 'file' driver requires '{name}' to be a regular file"
            ))
        };
        if let Ok(m) = std::fs::metadata(&path) {
            let t = m.file_type();
            if !(t.is_file() || t.is_block_device() || t.is_char_device()) {
                return Err(not_regular());
            }
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| Error::Failed(format!("Could not open '{name}': {}", describe_io(&e))))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::Failed(format!("Could not open '{name}': {}", describe_io(&e))))?;
        if meta.is_dir() {
            return Err(not_regular());
        }
        let len = file_length(&file, &meta)
            .map_err(|e| Error::Failed(format!("Could not open '{name}': {}", describe_io(&e))))?;
        Ok(HostFile {
            file,
            name: name.to_string(),
            len,
            dev: meta.dev(),
            ino: meta.ino(),
        })
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

    /// Fills `buf` from `offset`; bytes past the end read as zeros.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let avail = self.len.saturating_sub(offset).min(buf.len() as u64) as usize;
        buf[avail..].fill(0);
        let mut done = 0;
        while done < avail {
            match self
                .file
                .read_at(&mut buf[done..avail], offset + done as u64)
            {
                Ok(0) => {
                    buf[done..avail].fill(0);
                    break;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(Error::Failed(format!(
                        "{}: Could not read {} bytes at offset {offset}: {}",
                        self.name,
                        buf.len(),
                        describe_io(&e)
                    )));
                }
            }
        }
        Ok(())
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
        let fd = std::os::unix::io::AsRawFd::as_raw_fd(&self.file);
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

/// Opens `path` and reads its fixed-size header of `N` bytes, as qemu's
/// block layer reads: past the end of the file (a short or empty file)
/// the header reads as zeros, and the format's own checks judge it.
/// Returns the open file (for further reads), its length and the header.
pub fn read_fixed_header<const N: usize>(
    path: &std::path::Path,
    what: &str,
) -> Result<(File, u64, [u8; N])> {
    use std::os::unix::fs::FileExt;
    let file = File::open(path).map_err(Error::io_at(path, "Could not open"))?;
    let len = file
        .metadata()
        .map_err(Error::io_at(path, "Could not open"))?
        .len();
    let mut buf = [0u8; N];
    let mut done = 0;
    while done < N {
        match file.read_at(&mut buf[done..], done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::io(
                    format!(
                        "{}: Could not read the {what} header",
                        crate::name::escape_path(path)
                    ),
                    e,
                ));
            }
        }
    }
    Ok((file, len, buf))
}
