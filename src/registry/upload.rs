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
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

/// How many chunks may wait for each hashing thread: bounds memory (a
/// chunk is at most the HTTP layer's write buffer) and lets the sender run
/// ahead of the hashes for a while.
const HASH_QUEUE_CHUNKS: usize = 16;

/// A digest computed on its own thread from the chunks sent to it.
struct HashThread {
    tx: Option<SyncSender<Arc<[u8]>>>,
    handle: Option<JoinHandle<String>>,
}

impl HashThread {
    fn start<D: Digest + Send + 'static>() -> Self {
        let (tx, rx) = sync_channel::<Arc<[u8]>>(HASH_QUEUE_CHUNKS);
        let handle = std::thread::spawn(move || {
            let mut d = D::new();
            for chunk in rx {
                d.update(&chunk);
            }
            hex(&d.finalize())
        });
        HashThread {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    fn feed(&self, chunk: &Arc<[u8]>) -> std::io::Result<()> {
        match &self.tx {
            Some(tx) => tx
                .send(Arc::clone(chunk))
                .map_err(|_| std::io::Error::other("a checksum thread stopped")),
            None => Ok(()),
        }
    }

    fn finish(&mut self) -> Option<String> {
        drop(self.tx.take());
        self.handle.take().and_then(|h| h.join().ok())
    }
}

impl Drop for HashThread {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The file as an upload body: md5 and sha512 are computed on two threads
/// of their own as the HTTP layer pulls bytes (so hashing is off the
/// sending path), and the progress bar advances.
pub struct HashingReader {
    file: File,
    md5: HashThread,
    sha512: HashThread,
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
            md5: HashThread::start::<Md5>(),
            sha512: HashThread::start::<Sha512>(),
            progress,
            sent: 0,
        }
    }

    /// The checksums of everything read so far.
    pub fn finish(mut self) -> Result<Sent> {
        self.progress.finish();
        match (self.md5.finish(), self.sha512.finish()) {
            (Some(md5), Some(sha512)) => Ok(Sent {
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
        let n = self.file.read(buf)?;
        if n > 0 {
            let chunk: Arc<[u8]> = Arc::from(&buf[..n]);
            self.md5.feed(&chunk)?;
            self.sha512.feed(&chunk)?;
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
/// Returns notes (e.g. an algorithm that could not be checked).
pub fn verify(record: &serde_json::Value, sent: &Sent, path: &Path) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let id = record.get("id").and_then(|v| v.as_str()).unwrap_or("?");
    let field = |k: &str| record.get(k).and_then(|v| v.as_str()).map(str::to_string);
    if let Some(status) = field("status")
        && status != "active"
    {
        return Err(Error::Failed(format!(
            "image {id}: status is '{status}' after the upload, not 'active'"
        )));
    }
    if let Some(size) = record.get("size").and_then(|v| v.as_u64())
        && size != sent.size
    {
        return Err(Error::Failed(format!(
            "image {id}: the registry stored {size} bytes but {} were sent",
            sent.size
        )));
    }
    match field("checksum") {
        Some(c) if !c.eq_ignore_ascii_case(&sent.md5) => {
            return Err(Error::Failed(format!(
                "image {id}: checksum mismatch: the registry has md5 {c}, the data sent has md5 {}",
                sent.md5
            )));
        }
        Some(_) => {}
        None => notes.push(format!("image {id}: the registry reported no checksum")),
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
            Some(_) => {}
            None => notes.push(format!(
                "image {id}: cannot check os_hash_algo '{algo}' (md5 checked)"
            )),
        }
    }
    Ok(notes)
}
