//! A small value tree shaped like qemu's QObject (dicts, lists, strings,
//! numbers, booleans), printed the two ways `qemu-img info` prints it:
//! pretty JSON and the indented human dump of `Format specific
//! information:`.
//!
//! qemu keeps object members in a hash table (`QDict`, 512 buckets, new
//! entries at the head of a bucket) and prints them in bucket order, so
//! the member order of its JSON is a function of the key names, not of
//! the schema. [`Value::Dict`] stores members in schema (insertion) order
//! and [`dict_order`] derives the printed order from it.

use std::borrow::Cow;
use std::io::{self, Write};

/// One value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Int(i64),
    UInt(u64),
    Bool(bool),
    Str(Cow<'a, str>),
    List(Vec<Value<'a>>),
    /// Members in insertion (schema) order.
    Dict(Vec<(&'static str, Value<'a>)>),
}

impl<'a> Value<'a> {
    /// A borrowed string value.
    pub fn str(s: &'a str) -> Value<'a> {
        Value::Str(Cow::Borrowed(s))
    }

    fn is_composite(&self) -> bool {
        matches!(self, Value::List(_) | Value::Dict(_))
    }

    /// True for an empty dict or list.
    pub fn is_empty_composite(&self) -> bool {
        match self {
            Value::List(l) => l.is_empty(),
            Value::Dict(d) => d.is_empty(),
            _ => false,
        }
    }
}

/// Number of buckets of qemu's `QDict`.
const QDICT_BUCKETS: u32 = 512;

/// The hash qemu's `QDict` uses for its keys (the one from Samba's tdb):
/// seeded with the key length, each byte shifted by `(i * 5) % 24` and
/// added, then one linear congruential step.
pub fn qdict_hash(key: &str) -> u32 {
    let bytes = key.as_bytes();
    let mut value = 0x238F_13AFu32.wrapping_mul(bytes.len() as u32);
    for (i, &b) in bytes.iter().enumerate() {
        value = value.wrapping_add(u32::from(b) << ((i * 5) % 24));
    }
    1_103_515_243u32.wrapping_mul(value).wrapping_add(12345)
}

/// The order in which qemu prints a dict whose members were inserted in
/// the order given: by bucket, and within one bucket newest first.
pub fn dict_order<T>(members: &[(&'static str, T)]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..members.len()).collect();
    idx.sort_by_key(|&i| {
        (
            qdict_hash(members[i].0) % QDICT_BUCKETS,
            std::cmp::Reverse(i),
        )
    });
    idx
}

/// Writes `v` as qemu's pretty JSON (4-space indentation, `\uXXXX` for
/// every non-ASCII character), without a trailing newline.
pub fn write_json(out: &mut dyn Write, v: &Value, level: usize) -> io::Result<()> {
    match v {
        Value::Int(n) => write!(out, "{n}"),
        Value::UInt(n) => write!(out, "{n}"),
        Value::Bool(b) => write!(out, "{b}"),
        Value::Str(s) => write_json_string(out, s),
        Value::List(items) => {
            out.write_all(b"[")?;
            for (i, item) in items.iter().enumerate() {
                out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
                indent(out, level + 1)?;
                write_json(out, item, level + 1)?;
            }
            out.write_all(b"\n")?;
            indent(out, level)?;
            out.write_all(b"]")
        }
        Value::Dict(members) => {
            out.write_all(b"{")?;
            for (n, i) in dict_order(members).into_iter().enumerate() {
                let (key, item) = &members[i];
                out.write_all(if n == 0 { b"\n" } else { b",\n" })?;
                indent(out, level + 1)?;
                write_json_string(out, key)?;
                out.write_all(b": ")?;
                write_json(out, item, level + 1)?;
            }
            out.write_all(b"\n")?;
            indent(out, level)?;
            out.write_all(b"}")
        }
    }
}

fn indent(out: &mut dyn Write, level: usize) -> io::Result<()> {
    for _ in 0..level {
        out.write_all(b"    ")?;
    }
    Ok(())
}

/// A JSON string as qemu writes it: the bytes decoded as qemu decodes
/// them (see [`super::bytes::qemu_codepoint`]), printable ASCII as is
/// (with `"` and `\` escaped), the usual short escapes, everything else
/// as `\uXXXX` (upper-case hex, UTF-16 surrogate pairs above U+FFFF,
/// U+FFFD for an invalid sequence).
pub fn write_json_string(out: &mut dyn Write, s: &str) -> io::Result<()> {
    let bytes = super::bytes::bytes_of(s);
    let mut b: &[u8] = &bytes;
    let mut buf = Vec::with_capacity(b.len() + 2);
    buf.push(b'"');
    while !b.is_empty() {
        let (cp, used) = super::bytes::qemu_codepoint(b);
        b = &b[used.max(1)..];
        let cp = cp.unwrap_or(0xFFFD);
        match cp {
            0x22 => buf.extend_from_slice(b"\\\""),
            0x5C => buf.extend_from_slice(b"\\\\"),
            0x08 => buf.extend_from_slice(b"\\b"),
            0x0C => buf.extend_from_slice(b"\\f"),
            0x0A => buf.extend_from_slice(b"\\n"),
            0x0D => buf.extend_from_slice(b"\\r"),
            0x09 => buf.extend_from_slice(b"\\t"),
            0x20..=0x7E => buf.push(cp as u8),
            0x1_0000.. => {
                let v = cp - 0x1_0000;
                let pair = format!(
                    "\\u{:04X}\\u{:04X}",
                    0xD800 + (v >> 10),
                    0xDC00 + (v & 0x3FF)
                );
                buf.extend_from_slice(pair.as_bytes());
            }
            _ => buf.extend_from_slice(format!("\\u{cp:04X}").as_bytes()),
        }
    }
    buf.push(b'"');
    out.write_all(&buf)
}

/// Writes `v` as qemu's human dump (`dump_qobject`): dict keys with `-`
/// turned into spaces, list items as `[N]:`, nested values indented by
/// four spaces per level.
pub fn write_human(out: &mut dyn Write, level: usize, v: &Value) -> io::Result<()> {
    match v {
        Value::Int(n) => write!(out, "{n}"),
        Value::UInt(n) => write!(out, "{n}"),
        Value::Bool(b) => write!(out, "{b}"),
        Value::Str(s) => out.write_all(&super::bytes::bytes_of(s)),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                indent(out, level)?;
                write!(out, "[{i}]:")?;
                human_member(out, level, item)?;
            }
            Ok(())
        }
        Value::Dict(members) => {
            for i in dict_order(members) {
                let (key, item) = &members[i];
                indent(out, level)?;
                out.write_all(key.replace('-', " ").as_bytes())?;
                out.write_all(b":")?;
                human_member(out, level, item)?;
            }
            Ok(())
        }
    }
}

fn human_member(out: &mut dyn Write, level: usize, item: &Value) -> io::Result<()> {
    if item.is_composite() {
        out.write_all(b"\n")?;
        write_human(out, level + 1, item)
    } else {
        out.write_all(b" ")?;
        write_human(out, level + 1, item)?;
        out.write_all(b"\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: &Value) -> String {
        let mut out = Vec::new();
        write_json(&mut out, v, 0).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn image_info_key_order_is_qemus() {
        let keys = [
            "filename",
            "format",
            "dirty-flag",
            "actual-size",
            "virtual-size",
            "cluster-size",
            "encrypted",
            "compressed",
            "backing-filename",
            "full-backing-filename",
            "backing-filename-format",
            "snapshots",
            "format-specific",
            "children",
        ];
        let members: Vec<(&'static str, ())> = keys.iter().map(|k| (*k, ())).collect();
        let order: Vec<&str> = dict_order(&members).iter().map(|&i| keys[i]).collect();
        assert_eq!(
            order,
            [
                "compressed",
                "children",
                "backing-filename-format",
                "snapshots",
                "virtual-size",
                "filename",
                "cluster-size",
                "format",
                "actual-size",
                "format-specific",
                "full-backing-filename",
                "encrypted",
                "backing-filename",
                "dirty-flag"
            ]
        );
    }

    #[test]
    fn empty_containers_and_escapes() {
        let v = Value::Dict(vec![
            ("children", Value::List(vec![])),
            ("data", Value::Dict(vec![])),
            ("filename", Value::str("a\"\\\té😀\u{1}")),
        ]);
        assert_eq!(
            json(&v),
            "{\n    \"children\": [\n    ],\n    \"filename\": \"a\\\"\\\\\\t\\u00E9\\uD83D\\uDE00\\u0001\",\n    \"data\": {\n    }\n}"
        );
    }
}
