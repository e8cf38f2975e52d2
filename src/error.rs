//! The library's error type. Every message names the file, option or
//! value at fault; `main` prints it as one line after the program name
//! (two where qemu-img adds a hint line). A name taken from a file or a
//! command line goes into a message through [`crate::name::escape`].

use crate::name::{escape, escape_path, of_path};
use std::path::Path;
use thiserror::Error;

/// What went wrong, and whether it was the caller's fault (usage) or the
/// operation's (failure).
#[derive(Debug, Error)]
pub enum Error {
    /// A bad command line, option or value: exit status 2.
    #[error("{0}")]
    Usage(String),
    /// The operation failed (bad image, refused request...): exit status 1.
    #[error("{0}")]
    Failed(String),
    /// An I/O error, with what was being done to which file.
    #[error("{context}: {}", describe_io(source))]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A failure opening or reading an image file: which file, which
    /// operation, at which offset, and why (see [`ImageError`]).
    #[error("{0}")]
    Image(Box<ImageError>),
}

/// What was being done to an image file when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Opening the image: the host file, then the format's checks.
    Open,
    /// Reading `len` bytes (at the error's offset).
    Read { len: u64 },
}

/// Why an image file failed.
#[derive(Debug)]
pub enum Cause {
    /// The host refused the open or the read.
    Io(std::io::Error),
    /// The host file is not a regular file or device (qemu's `file`
    /// driver refuses it).
    NotRegular,
    /// The image is not acceptable: the format driver's own words.
    Invalid(String),
    /// A file the image names (a vmdk extent) failed.
    In(Box<ImageError>),
}

/// A structured image error. Its `Display` is qemu-img's wording: for
/// [`Op::Open`] `Could not open 'FILE': REASON` (as `qemu-img info`
/// reports a failed open), for a read `FILE: REASON`; [`reason`](Self::reason)
/// is the part qemu's driver says, for callers that put their own
/// context around it (`create -b`: `TARGET: REASON`).
#[derive(Debug)]
pub struct ImageError {
    /// The file, as named to diskforge (carried bytes, unescaped).
    pub file: String,
    /// What was being done to it.
    pub op: Op,
    /// Where in the file, when the failure is at an offset.
    pub offset: Option<u64>,
    /// Why it failed.
    pub cause: Cause,
}

impl ImageError {
    /// What qemu's driver says, without the `Could not open 'FILE': `
    /// that qemu-img puts before a failed open. A host open failure is
    /// worded by qemu's `file` driver, which names the file itself.
    pub fn reason(&self) -> String {
        let file = escape(&self.file);
        match (&self.op, &self.cause) {
            (Op::Open, Cause::Io(e)) => format!("Could not open '{file}': {}", describe_io(e)),
            (Op::Read { len }, Cause::Io(e)) => format!(
                "Could not read {len} bytes at offset {}: {}",
                self.offset.unwrap_or(0),
                describe_io(e)
            ),
            (_, Cause::NotRegular) => {
                format!("'file' driver requires '{file}' to be a regular file")
            }
            (_, Cause::Invalid(m)) => m.clone(),
            (_, Cause::In(inner)) => inner.named(),
        }
    }

    /// The reason with the file named: as is when the reason already
    /// names it, else `FILE: REASON`.
    pub fn named(&self) -> String {
        match (&self.op, &self.cause) {
            (Op::Open, Cause::Io(_) | Cause::NotRegular) => self.reason(),
            _ => format!("{}: {}", escape(&self.file), self.reason()),
        }
    }
}

impl std::fmt::Display for ImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.op {
            Op::Open => write!(
                f,
                "Could not open '{}': {}",
                escape(&self.file),
                self.reason()
            ),
            Op::Read { .. } => f.write_str(&self.named()),
        }
    }
}

impl std::error::Error for ImageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            Cause::Io(e) => Some(e),
            Cause::In(inner) => Some(inner.as_ref()),
            _ => None,
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The process exit status for this error (2 usage, 1 failure).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Failed(_) | Error::Io { .. } | Error::Image(_) => 1,
        }
    }

    /// A usage error about `file`, in qemu's `FILE: message` form (the
    /// name escaped as [`crate::name::escape`] does).
    pub fn usage_for(file: &str, message: impl std::fmt::Display) -> Self {
        Error::Usage(format!("{}: {message}", escape(file)))
    }

    /// A failure about `file`, in qemu's `FILE: message` form.
    pub fn failed_for(file: &str, message: impl std::fmt::Display) -> Self {
        Error::Failed(format!("{}: {message}", escape(file)))
    }

    /// A failure about the file at `path`: `PATH: message` (exit 1).
    pub fn failed_at(path: &Path, message: impl std::fmt::Display) -> Self {
        Error::Failed(format!("{}: {message}", escape_path(path)))
    }

    /// An image error about `file`.
    pub fn image_error(file: &str, op: Op, offset: Option<u64>, cause: Cause) -> Self {
        Error::Image(Box::new(ImageError {
            file: file.to_string(),
            op,
            offset,
            cause,
        }))
    }

    /// The image `file` does not open: the format driver's `message`
    /// (qemu-img: `Could not open 'FILE': message`).
    pub fn image(file: &str, message: impl std::fmt::Display) -> Self {
        Error::image_error(file, Op::Open, None, Cause::Invalid(message.to_string()))
    }

    /// [`Error::image`] for the file at `path`.
    pub fn image_at(path: &Path, message: impl std::fmt::Display) -> Self {
        Error::image(&of_path(path), message)
    }

    /// The host file `file` does not open (errno `e`).
    pub fn open_io(file: &str, e: std::io::Error) -> Self {
        Error::image_error(file, Op::Open, None, Cause::Io(e))
    }

    /// Reading `len` bytes at `offset` of `file` failed.
    pub fn read_io(file: &str, offset: u64, len: u64, e: std::io::Error) -> Self {
        Error::image_error(file, Op::Read { len }, Some(offset), Cause::Io(e))
    }

    /// This error, met while opening `file`: an image error about
    /// another file (one `file` names) becomes [`Cause::In`], a failed
    /// read or a bare failure becomes `file`'s reason; an open error
    /// about `file` itself and usage errors are kept.
    pub fn opening(self, file: &str) -> Self {
        match self {
            Error::Image(e) if e.file == file && e.op == Op::Open => Error::Image(e),
            // A read that failed while the image was being opened.
            Error::Image(e) if e.file == file => Error::image(file, e.reason()),
            Error::Image(e) => Error::image_error(file, Op::Open, None, Cause::In(e)),
            Error::Failed(m) => Error::image(file, m),
            Error::Io { source, .. } => Error::image(file, describe_io(&source)),
            usage => usage,
        }
    }

    /// The message without the `Could not open 'FILE': ` qemu-img puts
    /// before a failed open (see [`ImageError::reason`]).
    pub fn reason(&self) -> String {
        match self {
            Error::Image(e) => e.reason(),
            Error::Io { source, .. } => describe_io(source),
            other => other.to_string(),
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A closure for `map_err` that wraps an I/O error about `path`.
    pub fn io_at<'a>(path: &'a Path, what: &'a str) -> impl FnOnce(std::io::Error) -> Error + 'a {
        move |e| Error::io(format!("{}: {what}", escape_path(path)), e)
    }

    /// True when the error is the disk being full.
    pub fn is_no_space(&self) -> bool {
        let enospc = |e: &std::io::Error| e.raw_os_error() == Some(libc::ENOSPC);
        match self {
            Error::Io { source, .. } => enospc(source),
            Error::Image(e) => matches!(&e.cause, Cause::Io(io) if enospc(io)),
            _ => false,
        }
    }
}

/// An I/O error as C's `strerror` would say it, without Rust's
/// ` (os error N)` tail.
pub fn describe_io(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(errno: i32) -> std::io::Error {
        std::io::Error::from_raw_os_error(errno)
    }

    #[test]
    fn image_errors_read_as_qemu_img_words_them() {
        let extent = || Error::image("ext.vmdk", "File is too small, not a valid image");
        // (case, error, Display, reason)
        let cases: Vec<(&str, Error, &str, &str)> = vec![
            (
                "host open failure (qemu's file driver names the file)",
                Error::open_io("a.img", io(libc::ENOENT)),
                "Could not open 'a.img': Could not open 'a.img': No such file or directory",
                "Could not open 'a.img': No such file or directory",
            ),
            (
                "not a regular file",
                Error::image_error("d", Op::Open, None, Cause::NotRegular),
                "Could not open 'd': 'file' driver requires 'd' to be a regular file",
                "'file' driver requires 'd' to be a regular file",
            ),
            (
                "format driver refuses the image",
                Error::image("a.qcow", "Image not in qcow format"),
                "Could not open 'a.qcow': Image not in qcow format",
                "Image not in qcow format",
            ),
            (
                "read failure",
                Error::read_io("a.img", 4096, 512, io(libc::EIO)),
                "a.img: Could not read 512 bytes at offset 4096: Input/output error",
                "Could not read 512 bytes at offset 4096: Input/output error",
            ),
            (
                "an extent the image names fails",
                extent().opening("top.vmdk"),
                "Could not open 'top.vmdk': ext.vmdk: File is too small, not a valid image",
                "ext.vmdk: File is too small, not a valid image",
            ),
            (
                "a missing extent",
                Error::open_io("ext.vmdk", io(libc::ENOENT)).opening("top.vmdk"),
                "Could not open 'top.vmdk': Could not open 'ext.vmdk': No such file or directory",
                "Could not open 'ext.vmdk': No such file or directory",
            ),
            (
                "a read failure while opening",
                Error::read_io("a.img", 0, 512, io(libc::EIO)).opening("a.img"),
                "Could not open 'a.img': Could not read 512 bytes at offset 0: Input/output error",
                "Could not read 512 bytes at offset 0: Input/output error",
            ),
            (
                "a bare failure while opening",
                Error::Failed("Image is not in qcow2 format".into()).opening("a.img"),
                "Could not open 'a.img': Image is not in qcow2 format",
                "Image is not in qcow2 format",
            ),
            (
                "an open failure of the image itself is kept",
                Error::open_io("a.img", io(libc::EACCES)).opening("a.img"),
                "Could not open 'a.img': Could not open 'a.img': Permission denied",
                "Could not open 'a.img': Permission denied",
            ),
            (
                "a control character in the name is escaped",
                Error::image("a\nb", "bad"),
                "Could not open 'a\\x0ab': bad",
                "bad",
            ),
        ];
        for (case, e, display, reason) in cases {
            assert_eq!(e.to_string(), display, "{case}");
            assert_eq!(e.reason(), reason, "{case}");
            assert_eq!(e.exit_code(), 1, "{case}");
        }
    }

    #[test]
    fn no_space_is_seen_through_image_errors() {
        assert!(Error::read_io("a", 0, 1, io(libc::ENOSPC)).is_no_space());
        assert!(!Error::read_io("a", 0, 1, io(libc::EIO)).is_no_space());
    }
}
