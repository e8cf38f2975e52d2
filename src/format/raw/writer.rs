//! The raw convert target: guest bytes at the same offsets, written with
//! pwrite; zero runs become holes (or stay untouched on a target that is
//! known to read as zeros).

use crate::error::{Error, Result};
use crate::image::convert::{CHUNK, ImageWriter};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

/// A raw target written with pwrite.
pub struct RawWriter {
    file: File,
    name: String,
    /// The target reads as zeros: zero areas need no write.
    zeroed: bool,
}

impl RawWriter {
    /// A writer into `file` (named `name` in messages); `zeroed` when the
    /// file is known to read as zeros.
    pub fn new(file: File, name: &str, zeroed: bool) -> Self {
        RawWriter {
            file,
            name: name.to_string(),
            zeroed,
        }
    }
}

impl ImageWriter for RawWriter {
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.file.write_all_at(data, offset).map_err(|e| {
            Error::io(
                format!("error while writing at byte {offset} of {}", self.name),
                e,
            )
        })
    }

    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<()> {
        if self.zeroed || len == 0 {
            return Ok(());
        }
        // SAFETY: fallocate on a descriptor this writer owns; no memory is
        // passed.
        let punched = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                offset as libc::off_t,
                len as libc::off_t,
            )
        } == 0;
        if punched {
            return Ok(());
        }
        let zeros = vec![0u8; len.min(CHUNK) as usize];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(zeros.len() as u64) as usize;
            self.write(offset + done, &zeros[..n])?;
            done += n as u64;
        }
        Ok(())
    }

    /// Flushes the file (a device that cannot be flushed is fine, as for
    /// qemu).
    fn finish(self: Box<Self>) -> Result<()> {
        match self.file.sync_all() {
            Err(e) if e.raw_os_error() != Some(libc::EINVAL) => {
                Err(Error::io(format!("Could not flush '{}'", self.name), e))
            }
            _ => Ok(()),
        }
    }
}
