//! Shared harness of the fuzz targets: the fuzzer's bytes become an image
//! file, which goes through the same path as `diskforge info FILE`
//! (detection or a forced format, the reader, the shared fields) and, if
//! it is accepted, through both renderings. Any panic, hang or oversized
//! allocation is a finding.

use diskforge::format;
use diskforge::format::Format;
use diskforge::qapi;
use std::path::PathBuf;

/// A per-process scratch file, in memory when /dev/shm exists.
fn scratch() -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("diskforge-fuzz-{}.img", std::process::id()))
}

/// Writes `data` as an image file and describes it as `format` (or as
/// detected when `None`), then renders the result both ways.
pub fn inspect_as(format: Option<Format>, data: &[u8]) {
    let path = scratch();
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Some(name) = path.to_str() else {
        return;
    };
    if let Ok(i) = format::collect::collect(name, format, true) {
        let mut sink = Vec::new();
        let _ = qapi::write_json(&mut sink, &i);
        sink.clear();
        let _ = qapi::write_human(&mut sink, &i);
    }
}

/// Detection alone, on bytes.
pub fn probe(data: &[u8]) {
    let _ = format::probe::detect(data);
    let _ = diskforge::format::probe::probe_bytes(data);
}

/// The qcow2 reader on bytes in memory (no file system in the loop), then
/// both renderings.
pub fn qcow2_bytes(data: &[u8]) {
    let f = diskforge::image::HostFile::from_bytes("fuzz.qcow2", data.to_vec());
    if let Ok(mut i) = diskforge::format::qcow2::inspect::inspect_file(&f) {
        i.filename = "fuzz.qcow2".to_string();
        // Rendering is the same code for every snapshot: a few hundred
        // exercise it, 65536 only slow the fuzzer down.
        i.snapshots.truncate(256);
        if let Some(b) = &i.backing_filename {
            i.full_backing_filename = Some(diskforge::image::chain::full_backing_filename(
                &i.filename,
                b,
            ));
        }
        let mut sink = Vec::new();
        let _ = qapi::write_json(&mut sink, &i);
        sink.clear();
        let _ = qapi::write_human(&mut sink, &i);
    }
}

/// Guest bytes read per chained-read probe.
const READ_PROBE: usize = 64 << 10;
/// How much of the guest a map walk covers (bounds the time per input).
const MAP_SPAN: u64 = 256 << 20;

/// The read path on bytes: the first four bytes (little endian) say how
/// many of the rest are the top image, written as `top.img` and opened as
/// `format`; the others are `backing.img` next to it (a seed's top image
/// names it as its backing file). The chain is opened as `diskforge map`
/// opens it, mapped (JSON and human) over its first 256 MiB, and read at
/// its start, middle and end through every layer.
pub fn map_as(format: Format, data: &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let split = usize::try_from(u32::from_le_bytes(*head))
        .unwrap_or(usize::MAX)
        .min(rest.len());
    let dir = scratch().with_extension("d");
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let top = dir.join("top.img");
    if std::fs::write(&top, &rest[..split]).is_err()
        || std::fs::write(dir.join("backing.img"), &rest[split..]).is_err()
    {
        return;
    }
    let Some(name) = top.to_str() else {
        return;
    };
    let Ok(chain) = diskforge::format::open::open_chain(name, Some(format), true) else {
        return;
    };
    let mut out = Vec::new();
    for json in [true, false] {
        out.clear();
        let _ = diskforge::cmd::map::write_map(&mut out, &chain, json, 0, Some(MAP_SPAN));
    }
    let size = chain.virtual_size();
    let mut buf = vec![0u8; READ_PROBE];
    for at in [0, size / 2, size.saturating_sub(READ_PROBE as u64)] {
        let _ = chain.read_at(at, &mut buf);
    }
}
