//! Reading images: the raw reader, and [`ImageFile`], a bounded reader
//! that every format's `inspect` can use.
//!
//! qemu's block layer reads a file as if it were zero-padded up to whole
//! sectors and beyond: a read past the end of the file returns zeros.
//! [`ImageFile::read_at`] does the same, so truncated images are read the
//! way qemu reads them, and a header field pointing past the end costs a
//! bounded read, never an allocation of the field's size.

use crate::error::{Error, Result, describe_io};
use crate::qapi::ImageInfo;
use std::fs::{File, Metadata};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

pub use super::round_to_sector;

/// The length of an open file: its size, or for a block device the
/// position of its end.
pub fn file_length(file: &File, meta: &Metadata) -> std::io::Result<u64> {
    if meta.is_file() {
        return Ok(meta.len());
    }
    let mut f = file;
    f.seek(SeekFrom::End(0))
}

/// An image file opened for reading (or image bytes in memory, for
/// fuzzing and tests).
pub struct ImageFile {
    source: Source,
    len: u64,
    name: String,
}

enum Source {
    File(File),
    Memory(Vec<u8>),
}

impl ImageFile {
    /// Opens `path` read-only.
    pub fn open(path: &Path) -> Result<ImageFile> {
        let name = crate::name::escape_path(path);
        // Never open a FIFO or socket: the open would block.
        if let Ok(m) = std::fs::metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            let t = m.file_type();
            if !(t.is_file() || t.is_block_device() || t.is_char_device()) {
                return Err(Error::Failed(format!(
                    "'file' driver requires '{name}' to be a regular file"
                )));
            }
        }
        let file = File::open(path)
            .map_err(|e| Error::Failed(format!("Could not open '{name}': {}", describe_io(&e))))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::Failed(format!("{name}: {}", describe_io(&e))))?;
        let len = file_length(&file, &meta)
            .map_err(|e| Error::Failed(format!("{name}: {}", describe_io(&e))))?;
        Ok(ImageFile {
            source: Source::File(file),
            len,
            name,
        })
    }

    /// An image held in memory, read exactly as a file with these bytes.
    pub fn from_bytes(name: &str, data: Vec<u8>) -> ImageFile {
        ImageFile {
            len: data.len() as u64,
            source: Source::Memory(data),
            name: name.to_string(),
        }
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fills `buf` from `offset`; bytes past the end of the file read as
    /// zeros, as in qemu.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        buf.fill(0);
        if offset >= self.len {
            return Ok(());
        }
        let avail = (self.len - offset).min(buf.len() as u64) as usize;
        let file = match &self.source {
            Source::Memory(data) => {
                let start = offset as usize;
                buf[..avail].copy_from_slice(&data[start..start + avail]);
                return Ok(());
            }
            Source::File(file) => file,
        };
        let mut done = 0;
        while done < avail {
            match file.read_at(&mut buf[done..avail], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(Error::Failed(format!(
                        "Could not read {} bytes at offset {offset}: {}",
                        buf.len(),
                        describe_io(&e)
                    )));
                }
            }
        }
        Ok(())
    }

    /// `len` bytes from `offset` (zero-padded past the end). `len` must
    /// already be bounded by the caller.
    pub fn read_vec(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.read_at(offset, &mut v)?;
        Ok(v)
    }

    /// The name the file was opened by.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// `info` for a raw image: the virtual size is the file's length as
/// qemu's block layer sees it (rounded up to a whole sector).
pub fn inspect(path: &Path) -> Result<ImageInfo> {
    let f = ImageFile::open(path)?;
    Ok(ImageInfo {
        format: "raw".to_string(),
        virtual_size: round_to_sector(f.len()),
        ..ImageInfo::default()
    })
}
