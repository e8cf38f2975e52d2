//! Names read from images and given on the command line are bytes, not
//! necessarily UTF-8. qemu prints them as bytes in its human output and
//! decodes them its own way (modified UTF-8, one U+FFFD per bad sequence)
//! in JSON. The info model's `String`s carry such bytes as
//! [`crate::name`] describes; this module adds qemu's JSON decoding.

pub use crate::name::{bytes_of, path_of};

/// The bytes as a string: valid UTF-8 as is, other bytes carried (see
/// [`crate::name`]).
pub fn string_from_bytes(b: &[u8]) -> String {
    crate::name::from_bytes(b)
}

/// An OS string (a command-line file name) as a string.
pub fn string_from_os(s: &std::ffi::OsStr) -> String {
    crate::name::from_os(s)
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
