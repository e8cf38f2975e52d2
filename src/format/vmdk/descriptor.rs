//! The text descriptor: written by [`Descriptor::render`], read back by
//! the `find_*` and [`parse_extent_lines`] functions the way qemu reads it.
//!
//! VMware "Virtual Disk Format 1.1", "The Descriptor File": a header
//! section (`version`, `CID`, `parentCID`, `createType`, optional
//! `parentFileNameHint`), the extent descriptions (`access size type
//! "filename" [offset]`) and the disk database (`ddb.*` keys). "CID is a
//! random 32-bit value updated the first time the content of the virtual
//! disk is modified after the virtual disk is opened"; "parentCID ...
//! ffffffff if there is no parent".

/// `parentCID` of an image without a parent.
pub const NO_PARENT_CID: u32 = 0xffff_ffff;

/// qemu's `ddb.toolsVersion` when `toolsversion` is not given.
pub const DEFAULT_TOOLS_VERSION: &str = "2147483647";

/// qemu's `ddb.virtualHWVersion` when neither `hwversion` nor `compat6`
/// is given.
pub const DEFAULT_HW_VERSION: &str = "4";

/// What kind of data an extent line points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtentKind {
    Sparse,
    Flat,
}

/// One extent line of a descriptor qemu writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtentLine {
    pub sectors: u64,
    pub kind: ExtentKind,
    /// The extent's file name, relative to the descriptor's directory.
    pub file: String,
}

/// A descriptor as qemu-img create writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub cid: u32,
    pub parent_cid: u32,
    pub create_type: &'static str,
    pub parent_file_name_hint: Option<String>,
    pub extents: Vec<ExtentLine>,
    pub hw_version: String,
    pub cylinders: i64,
    pub heads: u32,
    pub adapter_type: &'static str,
    pub tools_version: String,
}

impl Descriptor {
    /// The descriptor text, byte for byte as qemu-img writes it. Note that
    /// a `parentFileNameHint` line takes the place of the blank line
    /// before `# Extent description`, as in qemu.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::with_capacity(512 + self.extents.len() * 48);
        s.push_str("# Disk DescriptorFile\nversion=1\n");
        let _ = writeln!(s, "CID={:x}", self.cid);
        let _ = writeln!(s, "parentCID={:x}", self.parent_cid);
        let _ = writeln!(s, "createType=\"{}\"", self.create_type);
        if let Some(hint) = &self.parent_file_name_hint {
            let _ = write!(s, "parentFileNameHint=\"{hint}\"");
        }
        s.push_str("\n# Extent description\n");
        for e in &self.extents {
            let _ = match e.kind {
                ExtentKind::Sparse => writeln!(s, "RW {} SPARSE \"{}\"", e.sectors, e.file),
                ExtentKind::Flat => writeln!(s, "RW {} FLAT \"{}\" 0", e.sectors, e.file),
            };
        }
        s.push_str("\n# The Disk Data Base\n#DDB\n\n");
        let _ = writeln!(s, "ddb.virtualHWVersion = \"{}\"", self.hw_version);
        let _ = writeln!(s, "ddb.geometry.cylinders = \"{}\"", self.cylinders);
        let _ = writeln!(s, "ddb.geometry.heads = \"{}\"", self.heads);
        s.push_str("ddb.geometry.sectors = \"63\"\n");
        let _ = writeln!(s, "ddb.adapterType = \"{}\"", self.adapter_type);
        let _ = writeln!(s, "ddb.toolsVersion = \"{}\"", self.tools_version);
        s
    }
}

/// The text up to the first NUL (qemu handles descriptors as C strings).
pub fn c_str(buf: &[u8]) -> &[u8] {
    match buf.iter().position(|&b| b == 0) {
        Some(i) => &buf[..i],
        None => buf,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The `CID` (or, with `parent`, `parentCID`) value: the hexadecimal
/// number after the first occurrence of the key and one more character
/// (the `=`), read as C's `sscanf("%x")` reads it. None when absent or not
/// a number.
pub fn find_cid(text: &[u8], parent: bool) -> Option<u32> {
    let key: &[u8] = if parent { b"parentCID" } else { b"CID" };
    let at = find(text, key)? + key.len() + 1;
    scan_hex_u32(text.get(at..)?)
}

/// `sscanf("%x")`: optional white space, sign and `0x`, then at least one
/// hex digit; values past 64 bits saturate (strtoul), then truncate.
fn scan_hex_u32(s: &[u8]) -> Option<u32> {
    let mut i = 0;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let mut negative = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        negative = s[i] == b'-';
        i += 1;
    }
    if i + 2 < s.len() && s[i] == b'0' && (s[i + 1] | 0x20) == b'x' && s[i + 2].is_ascii_hexdigit()
    {
        i += 2;
    }
    let start = i;
    let mut value: u64 = 0;
    let mut overflow = false;
    while i < s.len() && s[i].is_ascii_hexdigit() {
        let d = (s[i] as char).to_digit(16).unwrap_or(0) as u64;
        match value.checked_mul(16).and_then(|v| v.checked_add(d)) {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start {
        return None;
    }
    if overflow {
        value = u64::MAX;
    } else if negative {
        value = value.wrapping_neg();
    }
    Some(value as u32)
}

/// Why a quoted value could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotedError {
    /// The key is not in the text.
    Missing,
    /// No closing quote, or the value is longer than allowed.
    Invalid,
}

/// The value of `key="value"`: qemu finds the first occurrence of `key`,
/// skips two characters (`="`) and reads up to the next `"`; the value
/// must be at most `max_len` bytes.
pub fn find_quoted<'a>(
    text: &'a [u8],
    key: &[u8],
    max_len: usize,
) -> Result<&'a [u8], QuotedError> {
    let at = find(text, key).ok_or(QuotedError::Missing)? + key.len() + 2;
    let rest = text.get(at..).ok_or(QuotedError::Invalid)?;
    let end = rest
        .iter()
        .position(|&b| b == b'"')
        .ok_or(QuotedError::Invalid)?;
    if end > max_len {
        return Err(QuotedError::Invalid);
    }
    Ok(&rest[..end])
}

/// C's `isspace` in the C locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// One extent line as qemu parses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedExtent {
    pub sectors: i64,
    /// `FLAT`, `SPARSE`, `VMFS`, `VMFSSPARSE`, `SESPARSE`.
    pub kind: String,
    pub file: String,
    /// FLAT extents: where the data starts in the file, in sectors.
    pub flat_offset: i64,
}

/// Why the extent lines could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtentLineError {
    /// qemu's "Invalid extent line: LINE".
    Invalid(String),
}

/// The longest extent line quoted in an error message.
const QUOTE_MAX: usize = 200;

/// The extent lines of a descriptor, as qemu's `vmdk_parse_extents` reads
/// them: each line is scanned with `"%10s %ld %10s \"%511[^\n\r\"]\" %ld"`
/// (so white space, new lines included, may separate the fields), lines
/// that are not `RW` extents of a known type are skipped.
///
/// Runs in time linear in the text: white-space runs are skipped through
/// a precomputed table, every other field is bounded by its line.
pub fn parse_extent_lines(text: &[u8]) -> Result<Vec<ParsedExtent>, ExtentLineError> {
    // next_non_space[i]: the first index >= i that is not white space.
    let mut next_non_space = vec![0u32; text.len() + 1];
    next_non_space[text.len()] = text.len() as u32;
    for i in (0..text.len()).rev() {
        next_non_space[i] = if is_space(text[i]) {
            next_non_space[i + 1]
        } else {
            i as u32
        };
    }
    let skip = |i: usize| next_non_space[i.min(text.len())] as usize;
    let mut out = Vec::new();
    let mut p = 0;
    while p < text.len() {
        let line_end = text[p..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |i| p + i + 1);
        let scanned = scan_extent_line(text, p, &skip);
        if let Some(line) = scanned {
            let invalid = || {
                let mut end = line_end;
                if end > p && text[end - 1] == b'\n' {
                    end -= 1;
                }
                let shown = &text[p..end.min(p + QUOTE_MAX)];
                let mut s = crate::name::from_bytes(shown);
                if end > p + QUOTE_MAX {
                    s.push_str("...");
                }
                ExtentLineError::Invalid(s)
            };
            let ScannedLine {
                access,
                sectors,
                kind,
                file,
                offset,
            } = line;
            if access == b"RW" {
                let flat_offset = match (kind.as_slice(), offset) {
                    (b"FLAT", Some(o)) if o >= 0 => o,
                    (b"FLAT", _) => return Err(invalid()),
                    (b"VMFS", None) => 0,
                    (b"VMFS", Some(_)) => return Err(invalid()),
                    (_, Some(_)) => return Err(invalid()),
                    (_, None) => -1,
                };
                let known = matches!(
                    kind.as_slice(),
                    b"FLAT" | b"SPARSE" | b"VMFS" | b"VMFSSPARSE" | b"SESPARSE"
                );
                if sectors > 0 && known {
                    out.push(ParsedExtent {
                        sectors,
                        kind: crate::name::from_bytes(&kind),
                        file: crate::name::from_bytes(&file),
                        flat_offset,
                    });
                }
            }
        }
        p = line_end;
    }
    Ok(out)
}

/// The fields of one scanned extent line (at least the first four).
struct ScannedLine {
    access: Vec<u8>,
    sectors: i64,
    kind: Vec<u8>,
    file: Vec<u8>,
    offset: Option<i64>,
}

/// `%10s`: up to 10 non-space bytes after white space.
fn scan_word(text: &[u8], i: &mut usize, skip: &dyn Fn(usize) -> usize) -> Option<Vec<u8>> {
    let s = skip(*i);
    let mut e = s;
    while e < text.len() && e - s < 10 && !is_space(text[e]) {
        e += 1;
    }
    if e == s {
        return None;
    }
    *i = e;
    Some(text[s..e].to_vec())
}

/// `%ld`: a decimal with optional sign after white space; saturates as
/// strtol does.
fn scan_long(text: &[u8], i: &mut usize, skip: &dyn Fn(usize) -> usize) -> Option<i64> {
    let mut j = skip(*i);
    let mut negative = false;
    if j < text.len() && (text[j] == b'+' || text[j] == b'-') {
        negative = text[j] == b'-';
        j += 1;
    }
    let start = j;
    let mut v: i128 = 0;
    while j < text.len() && text[j].is_ascii_digit() {
        if v <= i64::MAX as i128 + 1 {
            v = v * 10 + (text[j] - b'0') as i128;
        }
        j += 1;
    }
    if j == start {
        return None;
    }
    *i = j;
    let v = if negative { -v } else { v };
    Some(v.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
}

fn scan_extent_line(
    text: &[u8],
    start: usize,
    skip: &dyn Fn(usize) -> usize,
) -> Option<ScannedLine> {
    let mut i = start;
    let access = scan_word(text, &mut i, skip)?;
    let sectors = scan_long(text, &mut i, skip)?;
    let kind = scan_word(text, &mut i, skip)?;
    i = skip(i);
    if text.get(i) != Some(&b'"') {
        return None;
    }
    i += 1;
    let s = i;
    while i < text.len() && i - s < 511 && !matches!(text[i], b'\n' | b'\r' | b'"') {
        i += 1;
    }
    if i == s {
        return None;
    }
    let file = text[s..i].to_vec();
    // Without the closing quote sscanf stops after the name: four fields.
    let offset = if text.get(i) == Some(&b'"') {
        i += 1;
        scan_long(text, &mut i, skip)
    } else {
        None
    };
    Some(ScannedLine {
        access,
        sectors,
        kind,
        file,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cid_and_quoted() {
        let t = b"CID=7312cd1b\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n";
        assert_eq!(find_cid(t, false), Some(0x7312cd1b));
        assert_eq!(find_cid(t, true), Some(0xffffffff));
        assert_eq!(
            find_quoted(t, b"createType", 127),
            Ok(&b"monolithicFlat"[..])
        );
        assert_eq!(find_quoted(t, b"nope", 127), Err(QuotedError::Missing));
    }

    #[test]
    fn extent_lines() {
        let t = b"RW 4 FLAT \"a b\" 0\nRDONLY 4 SPARSE \"x\"\nRW 8 SPARSE \"s\"\nRW 0 SPARSE \"z\"\nRW 1 ZERO \"q\"\n";
        let e = parse_extent_lines(t).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].file, "a b");
        assert_eq!(e[1].kind, "SPARSE");
        assert!(parse_extent_lines(b"RW 4 FLAT \"a\"\n").is_err());
        assert!(parse_extent_lines(b"RW 4 SPARSE \"a\" 7\n").is_err());
        let long = vec![b' '; 100_000];
        assert!(parse_extent_lines(&long).unwrap().is_empty());
    }
}
