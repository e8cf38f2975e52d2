//! Format detection from content, in the spirit of qemu's probing: qemu
//! reads the first 2048 bytes (zeros past the end of a short file), asks
//! every driver for a score and takes the best; an empty file is raw.
//!
//! Of the formats qemu detects but diskforge does not read (qed, vhdx,
//! luks, parallels, bochs, cloop), detection names them so that `info`
//! refuses them instead of calling them raw.

use crate::error::Result;
use crate::format::kind::Format;
use crate::format::qcow2;
use crate::format::vdi;
use crate::format::vpc;
use crate::image::HostFile;
use std::path::Path;

/// Bytes qemu's probe looks at.
pub const PROBE_BYTES: usize = 2048;

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// A format diskforge reads.
    Known(Format),
    /// A format qemu detects that diskforge does not read.
    Unsupported(&'static str),
}

/// "KDMV": a VMDK4 sparse extent.
const VMDK4_MAGIC: &[u8; 4] = b"KDMV";
/// "COWD": a VMDK3 (ESX) sparse extent.
const VMDK3_MAGIC: &[u8; 4] = b"COWD";

/// Magics of formats qemu detects and diskforge does not read.
const UNSUPPORTED: &[(&[u8], &str)] = &[
    (b"QED\0", "qed"),
    (b"vhdxfile", "vhdx"),
    (b"LUKS\xba\xbe\x00\x01", "luks"),
    (b"LUKS\xba\xbe\x00\x02", "luks"),
    (b"WithoutFreeSpace", "parallels"),
    (b"WithouFreSpacExt", "parallels"),
    (b"Bochs Virtual HD Image", "bochs"),
    (b"#!/bin/sh\n#V2.0 Format\n", "cloop"),
];

/// Detects the format of a file from its first bytes (`head`, at most
/// [`PROBE_BYTES`], shorter for a short file). Anything unrecognised is
/// raw, as in qemu.
pub fn detect(head: &[u8]) -> Detected {
    if head.is_empty() {
        return Detected::Known(Format::Raw);
    }
    // qemu probes a zero-padded buffer: pad short files the same way.
    let mut padded = [0u8; PROBE_BYTES];
    let n = head.len().min(PROBE_BYTES);
    padded[..n].copy_from_slice(&head[..n]);
    let buf = &padded[..];

    if buf[0..4] == qcow2::header::QCOW2_MAGIC.to_be_bytes() {
        let version = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        return Detected::Known(if version >= 2 {
            Format::Qcow2
        } else if version == 1 {
            Format::Qcow
        } else {
            Format::Raw
        });
    }
    if is_vmdk(buf) {
        return Detected::Known(Format::Vmdk);
    }
    if vdi::is_vdi(buf) {
        return Detected::Known(Format::Vdi);
    }
    if vpc::is_vpc(buf) {
        return Detected::Known(Format::Vpc);
    }
    for (magic, name) in UNSUPPORTED {
        if buf.starts_with(magic) {
            return Detected::Unsupported(name);
        }
    }
    Detected::Known(Format::Raw)
}

/// qemu's vmdk probe: a sparse extent magic, or a text descriptor whose
/// first line that is neither a comment nor blank is `version=1|2|3`.
pub fn is_vmdk(buf: &[u8]) -> bool {
    if buf.starts_with(VMDK4_MAGIC) || buf.starts_with(VMDK3_MAGIC) {
        return true;
    }
    let mut p = 0;
    let end = buf.len();
    while p < end {
        match buf[p] {
            b'#' => {
                while p < end && buf[p] != b'\n' {
                    p += 1;
                }
                p += 1;
            }
            b' ' => {
                while p < end && buf[p] == b' ' {
                    p += 1;
                }
                if p < end && buf[p] == b'\r' {
                    p += 1;
                }
                if p == end || buf[p] != b'\n' {
                    return false;
                }
                p += 1;
            }
            _ => {
                let rest = &buf[p..];
                return [b'1', b'2', b'3'].iter().any(|&v| {
                    let lf = [b"version=".as_slice(), &[v], b"\n"].concat();
                    let crlf = [b"version=".as_slice(), &[v], b"\r\n"].concat();
                    rest.starts_with(&lf) || rest.starts_with(&crlf)
                });
            }
        }
    }
    false
}

/// Detects an image's format from its first bytes, as qemu probes:
/// anything unrecognised is raw.
pub fn probe(path: &Path) -> Result<Format> {
    Ok(probe_bytes(&read_head(&HostFile::open_path(path)?)?))
}

/// The bytes detection looks at: the file's first [`PROBE_BYTES`] (fewer
/// for a shorter file).
pub fn read_head(file: &HostFile) -> Result<Vec<u8>> {
    file.read_vec(0, file.len().min(PROBE_BYTES as u64) as usize)
}

/// Detection on bytes already read (the start of the file), as qemu
/// probes (see [`crate::format::probe`]); formats diskforge does not read
/// count as raw here.
pub fn probe_bytes(head: &[u8]) -> Format {
    match detect(head) {
        Detected::Known(f) => f,
        Detected::Unsupported(_) => Format::Raw,
    }
}

#[cfg(test)]
mod tests {
    use crate::format::probe::*;

    #[test]
    fn detection() {
        assert_eq!(detect(b""), Detected::Known(Format::Raw));
        assert_eq!(detect(b"QFI\xfb\0\0\0\x03"), Detected::Known(Format::Qcow2));
        assert_eq!(detect(b"QFI\xfb\0\0\0\x07"), Detected::Known(Format::Qcow2));
        assert_eq!(detect(b"QFI\xfb\0\0\0\x01"), Detected::Known(Format::Qcow));
        assert_eq!(detect(b"KDMV"), Detected::Known(Format::Vmdk));
        assert_eq!(
            detect(b"# Disk DescriptorFile\nversion=1\nCID=1\n"),
            Detected::Known(Format::Vmdk)
        );
        assert_eq!(
            detect(b"# x\n   \r\nversion=2\r\n"),
            Detected::Known(Format::Vmdk)
        );
        assert_eq!(detect(b"# x\nhello\n"), Detected::Known(Format::Raw));
        assert_eq!(detect(b"conectix"), Detected::Known(Format::Vpc));
        assert_eq!(detect(b"QED\0"), Detected::Unsupported("qed"));
        assert_eq!(detect(&[0u8; 4096]), Detected::Known(Format::Raw));
    }
}
