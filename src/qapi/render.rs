//! Printing an [`ImageInfo`] the two ways `qemu-img info` does.
//!
//! JSON: the info is turned into a [`Value`] tree with members in qemu's
//! schema order (`BlockNodeInfo`, `SnapshotInfo`, `ImageInfoSpecific...`)
//! and printed by [`qobject::write_json`], which applies qemu's hash
//! order. Human: the fixed header lines, the snapshot table, the
//! format-specific data dumped generically, then one `Child node` section
//! per child.

use super::bytes::bytes_of;
use super::qobject::{self, Value};
use super::{ChildInfo, FormatSpecific, ImageInfo, Qcow2Encryption, SnapshotInfo};
use crate::size::human_size;
use std::borrow::Cow;
use std::io::{self, Write};

/// qemu's QAPI integers are int64: larger values print as it prints them.
fn int(n: u64) -> Value<'static> {
    Value::Int(n as i64)
}

fn string(s: &str) -> Value<'_> {
    Value::Str(Cow::Borrowed(s))
}

/// The info as a value tree: qemu's `BlockGraphInfo` (with `children`)
/// when `graph`, its `ImageInfo` (vmdk extents) otherwise.
pub fn to_value(info: &ImageInfo, graph: bool) -> Value<'_> {
    let mut m: Vec<(&'static str, Value)> = Vec::with_capacity(14);
    m.push(("filename", string(&info.filename)));
    m.push(("format", string(&info.format)));
    if let Some(d) = info.dirty_flag {
        m.push(("dirty-flag", Value::Bool(d)));
    }
    if let Some(a) = info.actual_size {
        m.push(("actual-size", int(a)));
    }
    m.push(("virtual-size", int(info.virtual_size)));
    if let Some(c) = info.cluster_size {
        m.push(("cluster-size", int(c)));
    }
    if info.encrypted == Some(true) {
        m.push(("encrypted", Value::Bool(true)));
    }
    if info.compressed == Some(true) {
        m.push(("compressed", Value::Bool(true)));
    }
    if let Some(b) = &info.backing_filename {
        m.push(("backing-filename", string(b)));
    }
    if let Some(b) = &info.full_backing_filename {
        m.push(("full-backing-filename", string(b)));
    }
    if let Some(b) = &info.backing_filename_format {
        m.push(("backing-filename-format", string(b)));
    }
    if !info.snapshots.is_empty() {
        m.push((
            "snapshots",
            Value::List(info.snapshots.iter().map(snapshot_value).collect()),
        ));
    }
    if let Some(fs) = &info.format_specific {
        m.push((
            "format-specific",
            Value::Dict(vec![
                ("type", Value::str(specific_type(fs))),
                ("data", specific_data(fs)),
            ]),
        ));
    }
    if graph {
        m.push((
            "children",
            Value::List(info.children.iter().map(child_value).collect()),
        ));
    }
    Value::Dict(m)
}

fn child_value(c: &ChildInfo) -> Value<'_> {
    Value::Dict(vec![
        ("name", string(&c.name)),
        ("info", to_value(&c.info, true)),
    ])
}

fn snapshot_value(s: &SnapshotInfo) -> Value<'_> {
    let mut m = vec![
        ("id", string(&s.id)),
        ("name", string(&s.name)),
        ("vm-state-size", int(s.vm_state_size)),
        ("date-sec", int(s.date_sec)),
        ("date-nsec", int(u64::from(s.date_nsec))),
        ("vm-clock-sec", int(s.vm_clock_sec)),
        ("vm-clock-nsec", int(u64::from(s.vm_clock_nsec))),
    ];
    if let Some(i) = s.icount {
        m.push(("icount", int(i)));
    }
    Value::Dict(m)
}

fn specific_type(fs: &FormatSpecific) -> &'static str {
    match fs {
        FormatSpecific::Qcow2(_) => "qcow2",
        FormatSpecific::Vmdk(_) => "vmdk",
        FormatSpecific::File => "file",
    }
}

/// The `data` member of `format-specific`.
fn specific_data(fs: &FormatSpecific) -> Value<'_> {
    match fs {
        FormatSpecific::Qcow2(q) => {
            let mut m = vec![("compat", string(&q.compat))];
            if let Some(d) = &q.data_file {
                m.push(("data-file", string(d)));
            }
            if let Some(b) = q.data_file_raw {
                m.push(("data-file-raw", Value::Bool(b)));
            }
            if let Some(b) = q.extended_l2 {
                m.push(("extended-l2", Value::Bool(b)));
            }
            if let Some(b) = q.lazy_refcounts {
                m.push(("lazy-refcounts", Value::Bool(b)));
            }
            if let Some(b) = q.corrupt {
                m.push(("corrupt", Value::Bool(b)));
            }
            m.push(("refcount-bits", int(u64::from(q.refcount_bits))));
            if let Some(e) = &q.encrypt {
                m.push(("encrypt", encrypt_value(e)));
            }
            if let Some(bitmaps) = &q.bitmaps {
                let list = bitmaps
                    .iter()
                    .map(|b| {
                        Value::Dict(vec![
                            ("name", string(&b.name)),
                            ("granularity", int(b.granularity)),
                            (
                                "flags",
                                Value::List(b.flags.iter().map(|f| Value::str(f)).collect()),
                            ),
                        ])
                    })
                    .collect();
                m.push(("bitmaps", Value::List(list)));
            }
            m.push(("compression-type", string(&q.compression_type)));
            Value::Dict(m)
        }
        FormatSpecific::Vmdk(v) => Value::Dict(vec![
            ("create-type", string(&v.create_type)),
            ("cid", int(u64::from(v.cid))),
            ("parent-cid", int(u64::from(v.parent_cid))),
            (
                "extents",
                Value::List(v.extents.iter().map(|e| to_value(e, false)).collect()),
            ),
        ]),
        FormatSpecific::File => Value::Dict(vec![]),
    }
}

fn encrypt_value(e: &Qcow2Encryption) -> Value<'_> {
    match e {
        Qcow2Encryption::Aes => Value::Dict(vec![("format", Value::str("aes"))]),
        Qcow2Encryption::Luks(l) => {
            let mut m = vec![
                ("format", Value::str("luks")),
                ("cipher-alg", string(&l.cipher_alg)),
                ("cipher-mode", string(&l.cipher_mode)),
                ("ivgen-alg", string(&l.ivgen_alg)),
            ];
            if let Some(h) = &l.ivgen_hash_alg {
                m.push(("ivgen-hash-alg", string(h)));
            }
            m.push(("hash-alg", string(&l.hash_alg)));
            m.push(("detached-header", Value::Bool(l.detached_header)));
            m.push(("payload-offset", int(l.payload_offset)));
            m.push(("master-key-iters", int(l.master_key_iters)));
            m.push(("uuid", string(&l.uuid)));
            let slots = l
                .slots
                .iter()
                .map(|s| {
                    let mut sm = vec![("active", Value::Bool(s.active))];
                    if let Some(i) = s.iters {
                        sm.push(("iters", int(i)));
                    }
                    if let Some(st) = s.stripes {
                        sm.push(("stripes", int(st)));
                    }
                    sm.push(("key-offset", int(s.key_offset)));
                    Value::Dict(sm)
                })
                .collect();
            m.push(("slots", Value::List(slots)));
            Value::Dict(m)
        }
    }
}

/// `qemu-img info --output=json` of one image (with a final newline).
pub fn write_json(out: &mut dyn Write, info: &ImageInfo) -> io::Result<()> {
    qobject::write_json(out, &to_value(info, true), 0)?;
    out.write_all(b"\n")
}

/// `qemu-img info --output=json --backing-chain`: an array, top first.
pub fn write_json_chain(out: &mut dyn Write, chain: &[ImageInfo]) -> io::Result<()> {
    let list = Value::List(chain.iter().map(|i| to_value(i, true)).collect());
    qobject::write_json(out, &list, 0)?;
    out.write_all(b"\n")
}

/// `qemu-img info` (human) of one image.
pub fn write_human(out: &mut dyn Write, info: &ImageInfo) -> io::Result<()> {
    out.write_all(b"image: ")?;
    out.write_all(&bytes_of(&info.filename))?;
    out.write_all(b"\nfile format: ")?;
    out.write_all(&bytes_of(&info.format))?;
    write!(
        out,
        "\nvirtual size: {} ({} bytes)\ndisk size: {}\n",
        human_size(info.virtual_size),
        info.virtual_size as i64,
        disk_size(info),
    )?;
    if info.encrypted == Some(true) {
        out.write_all(b"encrypted: yes\n")?;
    }
    if let Some(c) = info.cluster_size {
        writeln!(out, "cluster_size: {}", c as i64)?;
    }
    if info.dirty_flag == Some(true) {
        out.write_all(b"cleanly shut down: no\n")?;
    }
    if let Some(b) = &info.backing_filename {
        out.write_all(b"backing file: ")?;
        out.write_all(&bytes_of(b))?;
        match &info.full_backing_filename {
            None => out.write_all(b" (cannot determine actual path)")?,
            Some(full) if full != b => {
                out.write_all(b" (actual path: ")?;
                out.write_all(&bytes_of(full))?;
                out.write_all(b")")?;
            }
            Some(_) => {}
        }
        out.write_all(b"\n")?;
        if let Some(f) = &info.backing_filename_format {
            out.write_all(b"backing file format: ")?;
            out.write_all(&bytes_of(f))?;
            out.write_all(b"\n")?;
        }
    }
    if !info.snapshots.is_empty() {
        out.write_all(b"Snapshot list:\n")?;
        write_snapshot_header(out)?;
        for s in &info.snapshots {
            write_snapshot_row(out, s)?;
        }
    }
    write_specific(out, info, 0)?;
    for child in &info.children {
        write_child(out, "", child)?;
    }
    Ok(())
}

/// `qemu-img info --backing-chain` (human): the images one after the
/// other, separated by an empty line.
pub fn write_human_chain(out: &mut dyn Write, chain: &[ImageInfo]) -> io::Result<()> {
    for (i, info) in chain.iter().enumerate() {
        if i > 0 {
            out.write_all(b"\n")?;
        }
        write_human(out, info)?;
    }
    Ok(())
}

fn disk_size(info: &ImageInfo) -> String {
    match info.actual_size {
        Some(a) => human_size(a),
        None => "unavailable".to_string(),
    }
}

/// `Format specific information:` and the dumped data, unless the data
/// is empty (as for the `file` node).
fn write_specific(out: &mut dyn Write, info: &ImageInfo, level: usize) -> io::Result<()> {
    let Some(fs) = &info.format_specific else {
        return Ok(());
    };
    let data = specific_data(fs);
    if data.is_empty_composite() {
        return Ok(());
    }
    pad(out, level)?;
    out.write_all(b"Format specific information:\n")?;
    qobject::write_human(out, level + 1, &data)
}

fn pad(out: &mut dyn Write, level: usize) -> io::Result<()> {
    for _ in 0..level {
        out.write_all(b"    ")?;
    }
    Ok(())
}

/// One `Child node '/path':` section: a protocol node's description, then
/// its own children.
fn write_child(out: &mut dyn Write, prefix: &str, child: &ChildInfo) -> io::Result<()> {
    let path = format!("{prefix}/{}", child.name);
    out.write_all(b"Child node '")?;
    out.write_all(&bytes_of(&path))?;
    out.write_all(b"':\n    filename: ")?;
    let info = &child.info;
    out.write_all(&bytes_of(&info.filename))?;
    out.write_all(b"\n    protocol type: ")?;
    out.write_all(&bytes_of(&info.format))?;
    out.write_all(b"\n")?;
    writeln!(
        out,
        "    file length: {} ({} bytes)",
        human_size(info.virtual_size),
        info.virtual_size as i64
    )?;
    writeln!(out, "    disk size: {}", disk_size(info))?;
    write_specific(out, info, 1)?;
    for c in &info.children {
        write_child(out, &path, c)?;
    }
    Ok(())
}

fn write_snapshot_header(out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "{:<7} {:<16} {:>8} {:>19} {:>15} {:>10}",
        "ID", "TAG", "VM_SIZE", "DATE", "VM_CLOCK", "ICOUNT"
    )
}

fn write_snapshot_row(out: &mut dyn Write, s: &SnapshotInfo) -> io::Result<()> {
    let clock_ns = s
        .vm_clock_sec
        .wrapping_mul(1_000_000_000)
        .wrapping_add(u64::from(s.vm_clock_nsec));
    let secs = clock_ns / 1_000_000_000;
    // qemu casts the hours to int.
    let clock = format!(
        "{:04}:{:02}:{:02}.{:03}",
        (secs / 3600) as i32,
        (secs / 60) % 60,
        secs % 60,
        (clock_ns / 1_000_000) % 1000
    );
    let icount = match s.icount {
        Some(i) => (i as i64).to_string(),
        None => "--".to_string(),
    };
    // qemu copies id and name into fixed buffers (128 and 256 bytes) and
    // pads by bytes, as printf does: "%-7s %-16s %8s %19s %15s %10s".
    let mut line = Vec::new();
    line.extend_from_slice(&left(truncate(&s.id, 127), 7));
    line.push(b' ');
    line.extend_from_slice(&left(truncate(&s.name, 255), 16));
    let rest = format!(
        " {:>8} {:>19} {:>15} {:>10}\n",
        human_size(s.vm_state_size),
        local_date(s.date_sec),
        clock,
        icount
    );
    line.extend_from_slice(rest.as_bytes());
    out.write_all(&line)
}

/// The first `max` bytes of `s` (as the bytes it stands for).
fn truncate(s: &str, max: usize) -> Vec<u8> {
    let b = bytes_of(s);
    b[..b.len().min(max)].to_vec()
}

/// `%-Ns`: `b` padded with spaces to `width` bytes.
fn left(b: Vec<u8>, width: usize) -> Vec<u8> {
    let mut v = b;
    while v.len() < width {
        v.push(b' ');
    }
    v
}

/// `YYYY-MM-DD HH:MM:SS` in local time, as `strftime` after
/// `localtime_r` prints it.
fn local_date(secs: u64) -> String {
    let t = libc::time_t::try_from(secs).unwrap_or(libc::time_t::MAX);
    // SAFETY: `tm` is a plain C struct that localtime_r fills in; both
    // pointers are valid for the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return "1970-01-01 00:00:00".to_string();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        i64::from(tm.tm_year) + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}
