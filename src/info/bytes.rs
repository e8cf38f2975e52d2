//! Names read from images and given on the command line are bytes, not
//! necessarily UTF-8. qemu prints them as bytes in its human output and
//! decodes them its own way (modified UTF-8, one U+FFFD per bad sequence)
//! in JSON. To keep the info model's `String`s and still print exactly
//! what qemu prints, a byte that is not part of valid UTF-8 is carried in
//! the string as the private-use character U+10FF00 + byte, and turned
//! back into that byte when printing.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Byte `b` that is not valid UTF-8 travels as U+10FF00 + `b`.
const ESCAPE_BASE: u32 = 0x10_FF00;

/// The bytes as a string: valid UTF-8 as is, other bytes escaped.
pub fn string_from_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(chunk.valid());
        for &x in chunk.invalid() {
            out.push(char::from_u32(ESCAPE_BASE + u32::from(x)).unwrap_or('\u{fffd}'));
        }
    }
    out
}

/// An OS string (a command-line file name) as a string.
pub fn string_from_os(s: &OsStr) -> String {
    string_from_bytes(s.as_bytes())
}

/// The original bytes of a string made by [`string_from_bytes`].
pub fn bytes_of(s: &str) -> Cow<'_, [u8]> {
    if !s.chars().any(|c| u32::from(c) >= ESCAPE_BASE) {
        return Cow::Borrowed(s.as_bytes());
    }
    let mut out = Vec::with_capacity(s.len());
    let mut buf = [0u8; 4];
    for c in s.chars() {
        let u = u32::from(c);
        if u >= ESCAPE_BASE {
            out.push((u - ESCAPE_BASE) as u8);
        } else {
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    Cow::Owned(out)
}

/// The string for a one-line message: escaped bytes shown as U+FFFD.
pub fn display(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| u32::from(c) >= ESCAPE_BASE) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if u32::from(c) >= ESCAPE_BASE {
                    '\u{fffd}'
                } else {
                    c
                }
            })
            .collect(),
    )
}

/// The path a string names.
pub fn path_of(s: &str) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(&bytes_of(s)))
}

/// Decodes one code point the way qemu's `mod_utf8_codepoint` does:
/// returns the code point (or `None` for an invalid sequence, which
/// qemu prints as U+FFFD) and how many bytes were consumed. "\xC0\x80"
/// is U+0000; overlong forms, surrogates, noncharacters and values past
/// U+10FFFF are invalid; a sequence cut short consumes what was there.
pub fn qemu_codepoint(s: &[u8]) -> (Option<u32>, usize) {
    const MIN: [u32; 5] = [0x80, 0x800, 0x1_0000, 0x20_0000, 0x400_0000];
    let first = u32::from(s[0]);
    if first < 0x80 {
        return (Some(first), 1);
    }
    if first >= 0xFE || first & 0x40 == 0 {
        return (None, 1);
    }
    let len = (first as u8).leading_ones() as usize;
    let mut cp = first & ((0x80 >> len) - 1);
    for i in 1..len {
        match s.get(i) {
            Some(&b) if b & 0xC0 == 0x80 => cp = (cp << 6) | u32::from(b & 0x3F),
            _ => return (None, i),
        }
    }
    let invalid = cp > 0x10_FFFF
        || (0xFDD0..=0xFDEF).contains(&cp)
        || cp & 0xFFFE == 0xFFFE
        || (0xD800..=0xDFFF).contains(&cp)
        || (cp < MIN[len - 2] && !(cp == 0 && len == 2));
    (if invalid { None } else { Some(cp) }, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let raw = b"a\xff\xe2\x82b\xc3\xa9";
        let s = string_from_bytes(raw);
        assert_eq!(&*bytes_of(&s), raw);
        assert_eq!(&*bytes_of("plain é"), "plain é".as_bytes());
    }

    #[test]
    fn qemu_decoding() {
        assert_eq!(qemu_codepoint(b"\xc0\x80"), (Some(0), 2));
        assert_eq!(qemu_codepoint(b"\xe2\x82y"), (None, 2));
        assert_eq!(qemu_codepoint(b"\xed\xa0\x80"), (None, 3));
        assert_eq!(qemu_codepoint(b"\xf4\x90\x80\x80"), (None, 4));
        assert_eq!(qemu_codepoint(b"\xff"), (None, 1));
        assert_eq!(qemu_codepoint("é".as_bytes()), (Some(0xe9), 2));
        assert_eq!(qemu_codepoint("\u{fffe}".as_bytes()), (None, 3));
    }
}
