//! The image formats: one module per format, and the format-neutral
//! pieces that pick between them (names, option lists, detection).

pub mod check;
pub mod open;
pub mod qcow;
pub mod qcow2;
pub mod raw;
pub mod vdi;
pub mod vmdk;
pub mod vpc;

use crate::create::CreateContext;
use crate::error::{Error, Result};
use crate::options::OptDesc;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// An image format diskforge can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Raw,
    Qcow2,
    Qcow,
    Vmdk,
    Vdi,
    Vpc,
}

impl Format {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [Format; 6] = [
        Format::Raw,
        Format::Qcow2,
        Format::Qcow,
        Format::Vmdk,
        Format::Vdi,
        Format::Vpc,
    ];

    /// The format named on the command line (`vhd` is an alias of `vpc`).
    pub fn from_name(name: &str) -> Option<Format> {
        Some(match name {
            "raw" => Format::Raw,
            "qcow2" => Format::Qcow2,
            "qcow" => Format::Qcow,
            "vmdk" => Format::Vmdk,
            "vdi" => Format::Vdi,
            "vpc" | "vhd" => Format::Vpc,
            _ => return None,
        })
    }

    /// qemu's name for the format.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Qcow => "qcow",
            Format::Vmdk => "vmdk",
            Format::Vdi => "vdi",
            Format::Vpc => "vpc",
        }
    }

    /// The format's own creation options, in qemu's print order.
    pub fn create_options(self) -> &'static [OptDesc] {
        match self {
            Format::Raw => raw::CREATE_OPTIONS,
            Format::Qcow2 => qcow2::CREATE_OPTIONS,
            Format::Qcow => qcow::CREATE_OPTIONS,
            Format::Vmdk => vmdk::CREATE_OPTIONS,
            Format::Vdi => vdi::CREATE_OPTIONS,
            Format::Vpc => vpc::CREATE_OPTIONS,
        }
    }

    /// True when the format can have a backing file.
    pub fn supports_backing(self) -> bool {
        matches!(self, Format::Qcow2 | Format::Qcow | Format::Vmdk)
    }

    /// Writes a new image as described by `ctx`.
    pub fn create(self, ctx: &CreateContext) -> Result<()> {
        match self {
            Format::Raw => raw::create(ctx),
            Format::Qcow2 => qcow2::create(ctx),
            Format::Qcow => qcow::create(ctx),
            Format::Vmdk => vmdk::create(ctx),
            Format::Vdi => vdi::create(ctx),
            Format::Vpc => vpc::create(ctx),
        }
    }
}

/// How many bytes of a file detection looks at.
const PROBE_BYTES: usize = 2048;

/// Detects an image's format from its first bytes, as qemu probes:
/// anything unrecognised is raw.
pub fn probe(path: &Path) -> Result<Format> {
    let mut file = File::open(path).map_err(Error::io_at(path, "Could not open"))?;
    let mut buf = vec![0u8; PROBE_BYTES];
    let mut len = 0;
    while len < buf.len() {
        let n = file
            .read(&mut buf[len..])
            .map_err(Error::io_at(path, "Could not read"))?;
        if n == 0 {
            break;
        }
        len += n;
    }
    Ok(probe_bytes(&buf[..len]))
}

/// Detection on bytes already read (the start of the file), as qemu
/// probes (see [`crate::info::probe`]); formats diskforge does not read
/// count as raw here.
pub fn probe_bytes(head: &[u8]) -> Format {
    match crate::info::probe::detect(head) {
        crate::info::probe::Detected::Known(f) => f,
        crate::info::probe::Detected::Unsupported(_) => Format::Raw,
    }
}

/// What `info` shows about the image at `path` read as `format` (the
/// format-level fields; see [`crate::info`] for the rest).
pub fn inspect(path: &Path, format: Format) -> Result<crate::info::ImageInfo> {
    match format {
        Format::Raw => raw::inspect(path),
        Format::Qcow2 => qcow2::inspect::inspect(path),
        Format::Qcow => qcow::inspect(path),
        Format::Vmdk => vmdk::inspect(path),
        Format::Vdi => vdi::inspect(path),
        Format::Vpc => vpc::inspect(path),
    }
}

/// The virtual size of the image at `path` read as `format`.
pub fn virtual_size(path: &Path, format: Format) -> Result<u64> {
    match format {
        Format::Vmdk => vmdk::virtual_size(path),
        Format::Vpc => vpc::virtual_size(path),
        _ => inspect(path, format).map(|i| i.virtual_size),
    }
}

/// Opens `path` and reads its fixed-size header of `N` bytes, as qemu's
/// block layer reads: past the end of the file (a short or empty file)
/// the header reads as zeros, and the format's own checks judge it.
/// Returns the open file (for further reads), its length and the header.
pub(crate) fn read_fixed_header<const N: usize>(
    path: &Path,
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
