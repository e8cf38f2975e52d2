//! Names taken from image files and command lines (file names, extent
//! and backing names, feature and snapshot names...): bytes, not
//! necessarily UTF-8, carried in `String`s, and their form in messages.
//!
//! Carrying: a byte that is not part of valid UTF-8 travels in the string
//! as the private-use character U+10FF00 + byte ([`from_bytes`]) and is
//! turned back into that byte for the file system ([`path_of`]) and for
//! output ([`bytes_of`]), so that diskforge opens and prints exactly the
//! bytes qemu-img would.
//!
//! Messages: qemu-img prints names as their bytes. diskforge does the
//! same, except for control characters, which a one-line message must not
//! hold (a newline would forge a second line, an ESC could drive the
//! terminal): [`escape`] shows each byte of a control character as `\xNN`
//! (two lower-case hex digits). Control characters are the C0 set
//! (0x00–0x1F), DEL (0x7F) and the C1 set (U+0080–U+009F, shown as the two
//! bytes of its UTF-8 form, e.g. `\xc2\x9b`), and a byte 0x80–0x9F that is
//! not part of valid UTF-8 (a C1 control to a terminal that reads bytes as
//! Latin-1). Every other byte, a backslash included, is printed as qemu-img
//! prints it, so a name without control characters reads exactly as in
//! qemu-img's message.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Byte `b` that is not valid UTF-8 travels as U+10FF00 + `b`.
pub const CARRIER_BASE: u32 = 0x10_FF00;

/// The bytes as a string: valid UTF-8 as is, other bytes carried.
pub fn from_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(chunk.valid());
        for &x in chunk.invalid() {
            out.push(carrier(x));
        }
    }
    out
}

fn carrier(b: u8) -> char {
    char::from_u32(CARRIER_BASE + u32::from(b)).unwrap_or('\u{fffd}')
}

/// The byte a character carries, if it is a carrier.
fn carried(c: char) -> Option<u8> {
    let u = u32::from(c);
    (u >= CARRIER_BASE).then(|| (u - CARRIER_BASE) as u8)
}

/// An OS string (a command-line file name) as a string.
pub fn from_os(s: &OsStr) -> String {
    from_bytes(s.as_bytes())
}

/// A path as a string (its bytes carried).
pub fn of_path(p: &Path) -> String {
    from_os(p.as_os_str())
}

/// The original bytes of a string made by [`from_bytes`].
pub fn bytes_of(s: &str) -> Cow<'_, [u8]> {
    if !s.chars().any(|c| carried(c).is_some()) {
        return Cow::Borrowed(s.as_bytes());
    }
    let mut out = Vec::with_capacity(s.len());
    let mut buf = [0u8; 4];
    for c in s.chars() {
        match carried(c) {
            Some(b) => out.push(b),
            None => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
        }
    }
    Cow::Owned(out)
}

/// The path a string names.
pub fn path_of(s: &str) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(&bytes_of(s)))
}

/// True for a character [`escape`] shows as `\xNN`.
fn is_control(c: char) -> bool {
    match carried(c) {
        Some(b) => (0x80..=0x9f).contains(&b),
        None => c.is_control(),
    }
}

/// A name for a message: control characters as `\xNN` per byte (see the
/// module documentation), everything else as is (carried bytes stay
/// carried, to be printed as the bytes they are). The one escaping
/// function every message that shows a name goes through.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut buf = [0u8; 4];
    for c in s.chars() {
        if !is_control(c) {
            out.push(c);
            continue;
        }
        let one;
        let bytes: &[u8] = match carried(c) {
            Some(b) => {
                one = [b];
                &one
            }
            None => c.encode_utf8(&mut buf).as_bytes(),
        };
        for b in bytes {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    Cow::Owned(out)
}

/// [`escape`] of a path.
pub fn escape_path(p: &Path) -> String {
    escape(&of_path(p)).into_owned()
}

/// A whole message made safe to print: [`escape`] on each of its lines
/// (the line breaks qemu-img itself puts between a message and its hint
/// are kept), then its bytes. The last defence: names are escaped where
/// they enter a message, so that a newline inside one is escaped too.
pub fn message_bytes(message: &str) -> Vec<u8> {
    let lines: Vec<Cow<'_, str>> = message.split('\n').map(escape).collect();
    bytes_of(&lines.join("\n")).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let raw = b"a\xff\xe2\x82b\xc3\xa9";
        let s = from_bytes(raw);
        assert_eq!(&*bytes_of(&s), raw);
        assert_eq!(&*bytes_of("plain é"), "plain é".as_bytes());
    }

    #[test]
    fn escaping() {
        for (name, raw, shown) in [
            ("plain", &b"disk-1.vmdk"[..], &b"disk-1.vmdk"[..]),
            ("backslash kept", b"a\\x01", b"a\\x01"),
            ("C0", b"v-s0\x011.vmdk", b"v-s0\\x011.vmdk"),
            ("newline and ESC", b"a\nb\x1b[31m", b"a\\x0ab\\x1b[31m"),
            ("DEL", b"x\x7f", b"x\\x7f"),
            ("C1 in UTF-8", "a\u{9b}b".as_bytes(), b"a\\xc2\\x9bb"),
            ("lone C1 byte", b"a\x9bb", b"a\\x9bb"),
            (
                "other bytes as qemu prints them",
                b"a\xffb\xe9",
                b"a\xffb\xe9",
            ),
            ("UTF-8 kept", "é€".as_bytes(), "é€".as_bytes()),
        ] {
            let s = from_bytes(raw);
            assert_eq!(&*bytes_of(&escape(&s)), shown, "{name}");
        }
        assert_eq!(
            message_bytes("Could not open 'a\tb'\nhint"),
            b"Could not open 'a\\x09b'\nhint"
        );
    }
}
