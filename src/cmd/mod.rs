//! The subcommands built on the read path (one file per subcommand).

pub mod check;
pub mod compare;
pub mod convert;
pub mod create;
pub mod info;
pub mod map;

use crate::error::{Error, Result};
use crate::format::Format;
use std::io::Write;

/// The format named by `-f`, with qemu's message for an unknown one.
pub(crate) fn format_arg(name: Option<&str>, filename: &str) -> Result<Option<Format>> {
    match name {
        Some(n) => Format::from_name(n).map(Some).ok_or_else(|| {
            Error::Usage(format!("Could not open '{filename}': Unknown driver '{n}'"))
        }),
        None => Ok(None),
    }
}

/// A number option as qemu-img's `cvtnum` takes it (size suffixes, at
/// most `i64::MAX`), with its messages.
pub(crate) fn number_arg(name: &str, text: &str) -> Result<u64> {
    match crate::size::parse_size(text) {
        Ok(v) if v <= i64::MAX as u64 => Ok(v),
        Err(crate::size::SizeError::Invalid(_)) => {
            Err(Error::Usage(format!("Invalid {name} specified: '{text}'.")))
        }
        _ => Err(Error::Usage(format!(
            "Invalid {name} specified. Must be between 0 and {}.",
            i64::MAX
        ))),
    }
}

/// `--image-opts` is not supported yet.
pub(crate) fn refuse_image_opts(image_opts: bool) -> Result<()> {
    if image_opts {
        return Err(Error::Usage(
            "--image-opts is not supported: give a plain file name".to_string(),
        ));
    }
    Ok(())
}

/// Writes `bytes` to standard output; a closed pipe is not an error.
pub(crate) fn emit(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::io("writing to standard output", e)),
    }
}
