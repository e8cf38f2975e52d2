//! Shared harness of the fuzz targets: the fuzzer's bytes become an image
//! file, which goes through the same path as `diskforge info FILE`
//! (detection or a forced format, the reader, the shared fields) and, if
//! it is accepted, through both renderings. Any panic, hang or oversized
//! allocation is a finding.

use diskforge::format::Format;
use diskforge::format;
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
    if let Ok(i) = format::collect::collect(name, format) {
        let mut sink = Vec::new();
        let _ = qapi::write_json(&mut sink, &i);
        sink.clear();
        let _ = qapi::write_human(&mut sink, &i);
    }
}

/// Detection alone, on bytes.
pub fn probe(data: &[u8]) {
    let _ = format::probe::detect(data);
    let _ = diskforge::format::probe_bytes(data);
}

/// The qcow2 reader on bytes in memory (no file system in the loop), then
/// both renderings.
pub fn qcow2_bytes(data: &[u8]) {
    let f = diskforge::format::raw::inspect::ImageFile::from_bytes("fuzz.qcow2", data.to_vec());
    if let Ok(mut i) = diskforge::format::qcow2::inspect::inspect_file(&f) {
        i.filename = "fuzz.qcow2".to_string();
        // Rendering is the same code for every snapshot: a few hundred
        // exercise it, 65536 only slow the fuzzer down.
        i.snapshots.truncate(256);
        if let Some(b) = &i.backing_filename {
            i.full_backing_filename = Some(format::collect::full_backing_filename(&i.filename, b));
        }
        let mut sink = Vec::new();
        let _ = qapi::write_json(&mut sink, &i);
        sink.clear();
        let _ = qapi::write_human(&mut sink, &i);
    }
}
