//! The library's error type. Every message names the file, option or
//! value at fault; `main` prints it as one line after the program name
//! (two where qemu-img adds a hint line). A name taken from a file or a
//! command line goes into a message through [`crate::name::escape`].

use crate::name::{escape, escape_path};
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
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The process exit status for this error (2 usage, 1 failure).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Failed(_) | Error::Io { .. } => 1,
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
        matches!(self, Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC))
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
