//! The convert engine: a planner walks the block status of each source
//! chain (sources concatenated in guest order) and cuts data extents into
//! chunks of at most 2 MiB; worker threads read the chunks with pread and
//! find the zero runs at the sparse granularity; the calling thread puts
//! the chunks back in guest order and hands them to an [`ImageWriter`]. Buffers
//! come from a fixed pool (two per worker), so memory is bounded however
//! large the image is. Zero and unallocated extents are never read.

use super::Chain;
use crate::error::{Error, Result};
use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc;

/// The largest chunk read at once (qemu-img's buffer size).
pub const CHUNK: u64 = 2 << 20;

/// A new image filled in guest order: the convert target. Each format's
/// writer lives in `format/<fmt>/writer.rs`; [`crate::format::writer`]
/// picks one. The engine calls `write`/`write_zeroes` (and
/// `write_compressed` with `-c`) with offsets that only grow; the command
/// calls `finish` once after the last write.
pub trait ImageWriter: Send {
    /// Writes `data` at guest offset `offset`.
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<()>;
    /// Makes `[offset, offset + len)` read as zeros (nothing to do on a
    /// target known to be zero).
    fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<()>;
    /// Writes one cluster (or grain) of guest data at `offset`, already
    /// compressed by the engine (`packed`), for formats that store
    /// compressed clusters.
    fn write_compressed(&mut self, offset: u64, packed: &[u8]) -> Result<()> {
        let _ = (offset, packed);
        Err(Error::Failed(
            "Compression not supported for this file format".to_string(),
        ))
    }
    /// Completes the image (tables, refcounts, footer, end-of-stream
    /// marker) and flushes it.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// One source image: a chain and its name (for messages).
pub struct Source<'a> {
    pub name: &'a str,
    pub chain: &'a Chain,
}

/// How to convert.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// `-S` in bytes: zero runs of this size (aligned to it) become holes;
    /// 0 writes everything, zeros included.
    pub sparse: u64,
    /// `-m`: worker threads (at least 1).
    pub workers: usize,
}

/// One piece of the output in guest order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    /// Reads as zeros in the source.
    Zero { out: u64, len: u64 },
    /// Data to read from `sources[src]` at `at`.
    Data {
        src: usize,
        at: u64,
        out: u64,
        len: u64,
    },
}

/// Walks the sources' block status and yields pieces of at most
/// [`CHUNK`] bytes of data (zero pieces may be longer), each data extent
/// cut from its start as qemu-img cuts it.
struct Planner<'a> {
    sources: &'a [Source<'a>],
    src: usize,
    at: u64,
    out: u64,
    /// The rest of the current extent: (zero, length left).
    rest: Option<(bool, u64)>,
}

impl<'a> Planner<'a> {
    fn new(sources: &'a [Source<'a>]) -> Self {
        Planner {
            sources,
            src: 0,
            at: 0,
            out: 0,
            rest: None,
        }
    }

    fn next_piece(&mut self) -> Result<Option<Piece>> {
        loop {
            let Some(s) = self.sources.get(self.src) else {
                return Ok(None);
            };
            let size = s.chain.virtual_size();
            if self.at >= size {
                self.src += 1;
                self.at = 0;
                self.rest = None;
                continue;
            }
            let (zero, left) = match self.rest {
                Some(r) => r,
                None => {
                    let st = s.chain.block_status(self.at, size - self.at).map_err(|e| {
                        Error::Failed(format!(
                            "error while reading block status at offset {}: {e}",
                            self.at
                        ))
                    })?;
                    (st.zero, st.len.clamp(1, size - self.at))
                }
            };
            let len = if zero { left } else { left.min(CHUNK) };
            let piece = if zero {
                Piece::Zero { out: self.out, len }
            } else {
                Piece::Data {
                    src: self.src,
                    at: self.at,
                    out: self.out,
                    len,
                }
            };
            self.at += len;
            self.out += len;
            self.rest = (left > len).then_some((zero, left - len));
            return Ok(Some(piece));
        }
    }
}

/// The number of bytes that will be read (qemu-img's "allocated
/// sectors", what `-p` counts): the data extents, or everything with
/// `-S 0`.
pub fn bytes_to_copy(sources: &[Source], sparse: u64) -> Result<u64> {
    let mut planner = Planner::new(sources);
    let mut total = 0;
    while let Some(p) = planner.next_piece()? {
        match p {
            Piece::Data { len, .. } => total += len,
            Piece::Zero { len, .. } if sparse == 0 => total += len,
            Piece::Zero { .. } => {}
        }
    }
    Ok(total)
}

/// A run of a chunk: (start, length, all zeros).
type Run = (usize, usize, bool);

/// A chunk read by a worker: its buffer and its runs.
struct Done {
    seq: u64,
    buf: Vec<u8>,
    runs: Vec<Run>,
}

/// The runs of `buf` (which starts at output offset `out`): units of
/// `sparse` bytes aligned to the output offset are zero or not; neighbours
/// of the same kind are merged. `sparse` 0: one data run.
fn runs_of(buf: &[u8], out: u64, sparse: u64) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    if sparse == 0 {
        if !buf.is_empty() {
            runs.push((0, buf.len(), false));
        }
        return runs;
    }
    let mut pos = 0usize;
    while pos < buf.len() {
        let unit_end = ((out + pos as u64) / sparse + 1) * sparse - out;
        let end = (unit_end as usize).min(buf.len());
        let zero = buf[pos..end].iter().all(|&b| b == 0);
        match runs.last_mut() {
            Some(last) if last.2 == zero => last.1 += end - pos,
            _ => runs.push((pos, end - pos, zero)),
        }
        pos = end;
    }
    runs
}

type Job = (u64, usize, u64, u64, Vec<u8>);

/// An entry of the in-order queue.
enum Slot {
    Zero { out: u64, len: u64 },
    Data { seq: u64, out: u64 },
}

/// Converts `sources` (concatenated) into `sink`. `progress` is called
/// with the bytes copied so far after each chunk (see [`bytes_to_copy`]).
pub fn convert(
    sources: &[Source],
    settings: Settings,
    sink: &mut dyn ImageWriter,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let workers = settings.workers.max(1);
    let pool_size = workers * 2;
    let sparse = settings.sparse;
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = std::sync::Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<Result<Done>>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let job_rx = &job_rx;
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                loop {
                    let job = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((seq, src, at, out, mut buf)) = job else {
                        return;
                    };
                    let source = &sources[src];
                    let result = source
                        .chain
                        .read_at(at, &mut buf)
                        .map_err(|e| {
                            Error::Failed(format!(
                                "error while reading at byte {at} of {}: {e}",
                                source.name
                            ))
                        })
                        .map(|()| Done {
                            seq,
                            runs: runs_of(&buf, out, sparse),
                            buf,
                        });
                    if done_tx.send(result).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        drive(sources, sparse, pool_size, job_tx, &done_rx, sink, progress)
    })
}

/// The calling thread's loop: plans, dispatches, reorders, writes.
fn drive(
    sources: &[Source],
    sparse: u64,
    pool_size: usize,
    job_tx: mpsc::Sender<Job>,
    done_rx: &mpsc::Receiver<Result<Done>>,
    sink: &mut dyn ImageWriter,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let mut planner = Planner::new(sources);
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let mut allocated = 0usize;
    let mut queue: VecDeque<Slot> = VecDeque::new();
    let mut ready: BTreeMap<u64, Done> = BTreeMap::new();
    let mut seq = 0u64;
    let mut planned_all = false;
    let mut copied = 0u64;
    let queue_limit = pool_size * 4;
    let mut zeros: Vec<u8> = Vec::new();
    loop {
        // Plan and dispatch while buffers are free.
        while !planned_all && queue.len() < queue_limit {
            let have_buffer = !pool.is_empty() || allocated < pool_size;
            if !have_buffer {
                break;
            }
            match planner.next_piece()? {
                None => planned_all = true,
                Some(Piece::Zero { out, len }) if sparse != 0 => {
                    queue.push_back(Slot::Zero { out, len });
                }
                Some(Piece::Zero { out, len }) => {
                    // -S 0: zeros are written as data, in chunks.
                    let mut off = 0;
                    while off < len {
                        let n = (len - off).min(CHUNK);
                        queue.push_back(Slot::Zero {
                            out: out + off,
                            len: n,
                        });
                        off += n;
                    }
                }
                Some(Piece::Data { src, at, out, len }) => {
                    let mut buf = pool.pop().unwrap_or_else(|| {
                        allocated += 1;
                        Vec::with_capacity(CHUNK as usize)
                    });
                    buf.resize(len as usize, 0);
                    job_tx
                        .send((seq, src, at, out, buf))
                        .map_err(|_| Error::Failed("convert worker stopped".to_string()))?;
                    queue.push_back(Slot::Data { seq, out });
                    seq += 1;
                }
            }
        }
        // Write what is ready at the front of the queue.
        let Some(front) = queue.front() else {
            if planned_all {
                return Ok(());
            }
            continue;
        };
        match *front {
            Slot::Zero { out, len } => {
                queue.pop_front();
                if sparse == 0 {
                    if zeros.len() < len as usize {
                        zeros.resize(len as usize, 0);
                    }
                    sink.write(out, &zeros[..len as usize])?;
                    copied += len;
                    progress(copied);
                } else {
                    sink.write_zeroes(out, len)?;
                }
            }
            Slot::Data { seq: want, out } => {
                let done = match ready.remove(&want) {
                    Some(d) => d,
                    None => {
                        let d = done_rx
                            .recv()
                            .map_err(|_| Error::Failed("convert worker stopped".to_string()))??;
                        if d.seq != want {
                            ready.insert(d.seq, d);
                            continue;
                        }
                        d
                    }
                };
                queue.pop_front();
                for &(start, len, zero) in &done.runs {
                    let at = out + start as u64;
                    if zero {
                        sink.write_zeroes(at, len as u64)?;
                    } else {
                        sink.write(at, &done.buf[start..start + len])?;
                    }
                }
                copied += done.buf.len() as u64;
                pool.push(done.buf);
                progress(copied);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_follow_the_sparse_units() {
        let mut buf = vec![0u8; 16384];
        buf[5000] = 1;
        buf[16383] = 1;
        // (name, out offset, sparse, runs)
        let cases: [(&str, u64, u64, Vec<Run>); 4] = [
            ("no sparse", 0, 0, vec![(0, 16384, false)]),
            (
                "4k aligned",
                0,
                4096,
                vec![
                    (0, 4096, true),
                    (4096, 4096, false),
                    (8192, 4096, true),
                    (12288, 4096, false),
                ],
            ),
            ("8k", 0, 8192, vec![(0, 16384, false)]),
            (
                "offset start",
                2048,
                4096,
                vec![
                    (0, 2048, true),
                    (2048, 4096, false),
                    (6144, 8192, true),
                    (14336, 2048, false),
                ],
            ),
        ];
        for (name, out, sparse, want) in cases {
            assert_eq!(runs_of(&buf, out, sparse), want, "{name}");
        }
    }
}
