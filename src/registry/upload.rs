//! Streaming the image file: a reader that computes md5 and sha512 (the
//! checksums Glance records) and advances the progress bar as the HTTP
//! layer pulls bytes, and the comparison with the registry's record.

use crate::error::{Error, Result};
use crate::progress::Progress;
use md5::Md5;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// How many chunk buffers circulate between the sender and the hashing
/// threads: bounds memory (a chunk is at most the HTTP layer's write
/// buffer, 256 KiB) and lets the sender run ahead of the hashes a little.
const HASH_BUFFERS: usize = 16;

/// md5 and sha512 computed on two threads of their own, off the sending
/// path: each chunk goes sender -> md5 thread -> sha512 thread -> back to
/// the pool of free buffers, so nothing is allocated per chunk.
struct Hashers {
    to_md5: Option<SyncSender<Vec<u8>>>,
    free: Receiver<Vec<u8>>,
    md5: Option<JoinHandle<String>>,
    sha512: Option<JoinHandle<String>>,
}

/// Lowers the calling thread's scheduling priority (nice 19). The
/// checksums are off the sending path and have slack; a registry on the
/// same small machine (a local Glance hashing the same bytes) should win
/// any fight for the CPU, or the upload itself slows down.
fn yield_cpu_to_others() {
    // SAFETY: setpriority on the calling thread (who = 0 names the calling
    // thread on Linux); a failure only leaves the priority as it was.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

impl Hashers {
    fn start() -> Self {
        let (free_tx, free) = sync_channel::<Vec<u8>>(HASH_BUFFERS);
        for _ in 0..HASH_BUFFERS {
            let _ = free_tx.send(Vec::new());
        }
        let (to_md5, md5_rx) = sync_channel::<Vec<u8>>(HASH_BUFFERS);
        let (to_sha, sha_rx) = sync_channel::<Vec<u8>>(HASH_BUFFERS);
        let md5 = std::thread::spawn(move || {
            yield_cpu_to_others();
            let mut d = Md5::new();
            for buf in md5_rx {
                d.update(&buf);
                if to_sha.send(buf).is_err() {
                    break;
                }
            }
            hex(&d.finalize())
        });
        let sha512 = std::thread::spawn(move || {
            yield_cpu_to_others();
            let mut d = Sha512::new();
            for buf in sha_rx {
                d.update(&buf);
                // Never blocks: the pool holds every buffer there is.
                let _ = free_tx.send(buf);
            }
            hex(&d.finalize())
        });
        Hashers {
            to_md5: Some(to_md5),
            free,
            md5: Some(md5),
            sha512: Some(sha512),
        }
    }

    fn feed(&self, data: &[u8]) -> std::io::Result<()> {
        let stopped = || std::io::Error::other("a checksum thread stopped");
        let Some(to_md5) = &self.to_md5 else {
            return Err(stopped());
        };
        let mut buf = self.free.recv().map_err(|_| stopped())?;
        buf.clear();
        buf.extend_from_slice(data);
        to_md5.send(buf).map_err(|_| stopped())
    }

    /// (md5, sha512) of everything fed.
    fn finish(&mut self) -> Option<(String, String)> {
        drop(self.to_md5.take());
        let md5 = self.md5.take().and_then(|h| h.join().ok());
        let sha512 = self.sha512.take().and_then(|h| h.join().ok());
        md5.zip(sha512)
    }
}

impl Drop for Hashers {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The file as an upload body: checksums computed on their own threads
/// as the HTTP layer pulls bytes, and the progress bar advanced.
pub struct HashingReader {
    file: File,
    hashers: Hashers,
    progress: Progress,
    pub sent: u64,
}

/// What was sent: byte count and checksums (lowercase hex).
#[derive(Debug, Clone)]
pub struct Sent {
    pub size: u64,
    pub md5: String,
    pub sha512: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl HashingReader {
    pub fn new(file: File, progress: Progress) -> Self {
        HashingReader {
            file,
            hashers: Hashers::start(),
            progress,
            sent: 0,
        }
    }

    /// The checksums of everything read so far.
    pub fn finish(mut self) -> Result<Sent> {
        self.progress.finish();
        match self.hashers.finish() {
            Some((md5, sha512)) => Ok(Sent {
                size: self.sent,
                md5,
                sha512,
            }),
            _ => Err(Error::Failed(
                "computing the checksums of the data sent failed".to_string(),
            )),
        }
    }
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // On a signal the upload stops, so that its connection no longer
        // holds the registry (a busy Glance worker) while the record is
        // deleted.
        if crate::cleanup::interrupted() {
            return Err(std::io::Error::other("interrupted"));
        }
        let n = self.file.read(buf)?;
        if n > 0 {
            self.hashers.feed(&buf[..n])?;
        }
        self.sent += n as u64;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// Read buffer for a second hashing pass.
const HASH_BUFFER: usize = 1 << 20;

/// The `algo` digest of the file at `path` (a second pass, for registries
/// configured with another os_hash_algo than sha512); None for an
/// algorithm diskforge does not have.
pub fn file_digest(path: &Path, algo: &str) -> Result<Option<String>> {
    fn run<D: Digest>(path: &Path) -> Result<String> {
        let mut f = File::open(path).map_err(Error::io_at(path, "Could not open"))?;
        let mut d = D::new();
        let mut buf = vec![0u8; HASH_BUFFER];
        loop {
            let n = f
                .read(&mut buf)
                .map_err(Error::io_at(path, "Could not read"))?;
            if n == 0 {
                break;
            }
            d.update(&buf[..n]);
        }
        Ok(hex(&d.finalize()))
    }
    Ok(Some(match algo {
        "sha224" => run::<Sha224>(path)?,
        "sha256" => run::<Sha256>(path)?,
        "sha384" => run::<Sha384>(path)?,
        "sha512" => run::<Sha512>(path)?,
        "md5" => run::<Md5>(path)?,
        _ => return Ok(None),
    }))
}

/// Compares the registry's record after an upload with what was sent.
/// The record must be `active`, hold the size sent, and carry at least one
/// checksum diskforge can check (md5 `checksum`, or `os_hash_value` in an
/// algorithm it has), every one of them matching: an `active` record with
/// nothing to check proves nothing about the data, and is a failure.
/// Returns the one line that says what was verified, then notes (e.g. an
/// algorithm that could not be checked).
pub fn verify(record: &serde_json::Value, sent: &Sent, path: &Path) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let id = record.get("id").and_then(|v| v.as_str()).unwrap_or("?");
    let field = |k: &str| record.get(k).and_then(|v| v.as_str()).map(str::to_string);
    match field("status") {
        Some(s) if s == "active" => {}
        Some(s) => {
            return Err(Error::Failed(format!(
                "image {id}: status is '{s}' after the upload, not 'active'"
            )));
        }
        None => {
            return Err(Error::Failed(format!(
                "image {id}: the record read back after the upload has no status"
            )));
        }
    }
    if let Some(size) = record.get("size").and_then(|v| v.as_u64())
        && size != sent.size
    {
        return Err(Error::Failed(format!(
            "image {id}: the registry stored {size} bytes but {} were sent",
            sent.size
        )));
    }
    let mut checked = Vec::new();
    if let Some(c) = field("checksum") {
        if !c.eq_ignore_ascii_case(&sent.md5) {
            return Err(Error::Failed(format!(
                "image {id}: checksum mismatch: the registry has md5 {c}, the data sent has md5 {}",
                sent.md5
            )));
        }
        checked.push("md5 checksum".to_string());
    }
    if let (Some(algo), Some(value)) = (field("os_hash_algo"), field("os_hash_value")) {
        let ours = if algo == "sha512" {
            Some(sent.sha512.clone())
        } else {
            file_digest(path, &algo)?
        };
        match ours {
            Some(o) if !o.eq_ignore_ascii_case(&value) => {
                return Err(Error::Failed(format!(
                    "image {id}: os_hash_value mismatch: the registry has {algo} {value}, the data sent has {algo} {o}"
                )));
            }
            Some(_) => checked.push(format!("{algo} os_hash")),
            None => notes.push(format!(
                "image {id}: cannot check os_hash_algo '{algo}' (md5 checked)"
            )),
        }
    }
    if checked.is_empty() {
        return Err(Error::Failed(format!(
            "image {id}: the registry's record is active but has no checksum or os_hash_value \
             that diskforge can check: the data stored cannot be verified"
        )));
    }
    let size = if record.get("size").and_then(|v| v.as_u64()).is_some() {
        "size, "
    } else {
        ""
    };
    let mut lines = vec![format!(
        "uploaded {} bytes to image {id}: {size}{} verified",
        sent.size,
        checked.join(" and ")
    )];
    lines.extend(notes);
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn what_verifies() {
        let sent = Sent {
            size: 3,
            md5: "aa".to_string(),
            sha512: "bb".to_string(),
        };
        let p = Path::new("/nonexistent");
        let ok = |r: serde_json::Value| verify(&r, &sent, p).is_ok();
        let cases = [
            (
                "md5 only",
                json!({"status": "active", "size": 3, "checksum": "aa"}),
                true,
            ),
            (
                "sha512 only",
                json!({"status": "active", "os_hash_algo": "sha512", "os_hash_value": "BB"}),
                true,
            ),
            (
                "both",
                json!({"status": "active", "checksum": "aa", "os_hash_algo": "sha512", "os_hash_value": "bb"}),
                true,
            ),
            (
                "nothing to check",
                json!({"status": "active", "size": 3}),
                false,
            ),
            (
                "nulls",
                json!({"status": "active", "checksum": null, "os_hash_value": null}),
                false,
            ),
            (
                "unknown algo only",
                json!({"status": "active", "os_hash_algo": "blake9", "os_hash_value": "x"}),
                false,
            ),
            (
                "md5 mismatch",
                json!({"status": "active", "checksum": "ab"}),
                false,
            ),
            (
                "size mismatch",
                json!({"status": "active", "size": 4, "checksum": "aa"}),
                false,
            ),
            (
                "queued",
                json!({"status": "queued", "checksum": "aa"}),
                false,
            ),
            ("no status", json!({"checksum": "aa"}), false),
        ];
        for (name, rec, want) in cases {
            assert_eq!(ok(rec), want, "{name}");
        }
    }
}
