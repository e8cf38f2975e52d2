//! qemu's `MapEntry` and how `qemu-img map` prints it: JSON lines, or the
//! human table of data extents.

use std::io::{self, Write};

/// One run of guest bytes with the same block status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MapEntry {
    pub start: u64,
    pub length: u64,
    pub depth: u64,
    pub present: bool,
    pub zero: bool,
    pub data: bool,
    pub compressed: bool,
    pub offset: Option<u64>,
    /// The host file of `offset` (set exactly when `offset` is).
    pub filename: Option<String>,
}

impl MapEntry {
    /// qemu-img's `entry_mergeable`: `next` continues `self`.
    pub fn mergeable(&self, next: &MapEntry) -> bool {
        if self.length == 0 {
            return false;
        }
        if self.zero != next.zero
            || self.data != next.data
            || self.compressed != next.compressed
            || self.depth != next.depth
            || self.present != next.present
            || self.filename != next.filename
            || self.offset.is_some() != next.offset.is_some()
        {
            return false;
        }
        match (self.offset, next.offset) {
            (Some(a), Some(b)) => a.checked_add(self.length) == Some(b),
            _ => true,
        }
    }
}

/// The human table's error for an entry it cannot show.
pub const HUMAN_UNMAPPABLE: &str = "File contains external, encrypted or compressed clusters.";

/// The human table's header line.
pub fn write_human_header(out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "{:<16}{:<16}{:<16}File",
        "Offset", "Length", "Mapped to"
    )
}

/// C's `%#-16x`: `0x` prefix except for zero, left-aligned in 16.
fn hex16(v: u64) -> String {
    let s = if v == 0 {
        "0".to_string()
    } else {
        format!("{v:#x}")
    };
    format!("{s:<16}")
}

/// Prints one entry as qemu-img's `dump_map_entry` does. For the human
/// table, returns `Ok(false)` when the entry cannot be shown (data
/// without an offset): the caller reports [`HUMAN_UNMAPPABLE`]. `next`
/// is the entry that follows (None for the last); the human table
/// folds its flags as qemu does, to coalesce more.
pub fn write_entry(
    out: &mut dyn Write,
    json: bool,
    e: &MapEntry,
    next: Option<&mut MapEntry>,
) -> io::Result<bool> {
    if json {
        write!(
            out,
            "{{ \"start\": {}, \"length\": {}, \"depth\": {}, \"present\": {}, \"zero\": {}, \"data\": {}, \"compressed\": {}",
            e.start, e.length, e.depth, e.present, e.zero, e.data, e.compressed
        )?;
        if let Some(o) = e.offset {
            write!(out, ", \"offset\": {o}")?;
        }
        out.write_all(b"}")?;
        if next.is_some() {
            out.write_all(b",\n")?;
        }
        return Ok(true);
    }
    if e.data && e.offset.is_none() {
        return Ok(false);
    }
    if e.data && !e.zero {
        writeln!(
            out,
            "{}{}{}{}",
            hex16(e.start),
            hex16(e.length),
            hex16(e.offset.unwrap_or(0)),
            e.filename.as_deref().unwrap_or("")
        )?;
    }
    if let Some(n) = next
        && (!n.data || n.zero)
    {
        n.data = false;
        n.zero = true;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_hex_like_c() {
        assert_eq!(hex16(0), "0               ");
        assert_eq!(hex16(0x20000), "0x20000         ");
    }

    #[test]
    fn merge_rules() {
        let a = MapEntry {
            length: 512,
            data: true,
            offset: Some(0),
            filename: Some("a".into()),
            ..MapEntry::default()
        };
        let mut b = a.clone();
        b.start = 512;
        b.offset = Some(512);
        assert!(a.mergeable(&b));
        b.offset = Some(4096);
        assert!(!a.mergeable(&b));
        let empty = MapEntry::default();
        assert!(!empty.mergeable(&a));
    }
}
