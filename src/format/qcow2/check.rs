//! `check` for qcow2: qemu's consistency check (`qcow2_check_refcounts`
//! and its helpers). Every reference in the metadata is counted into a
//! rebuilt refcount array (header, active and snapshot L1/L2 tables,
//! data and compressed clusters, snapshot table, refcount table and
//! blocks, LUKS header, bitmap directory and tables), which is then
//! compared with the counts stored in the image; OFLAG_COPIED is checked
//! last. Messages go to `log` in qemu's words; the counts are qemu's.
//!
//! Repair (`fix`): stored counts are corrected one entry at a time where
//! the refcount block exists (leaks, counts too low), then OFLAG_COPIED
//! flags; a damaged refcount structure that needs a rebuild is refused
//! with qemu's message for `-r leaks`, and not rebuilt for `-r all`.

use super::header::{Header, INCOMPAT_DATA_FILE, INCOMPAT_EXTL2, V2_HEADER_LENGTH};
use super::refs::{DiskError, NoMemory, Rebuilt, Stored};
use crate::image::HostFile;
use crate::qapi::ImageCheck;
use byteorder::{BigEndian, ByteOrder};
use std::fmt::Write as _;

pub(super) const L1E_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const L1E_RESERVED_MASK: u64 = 0x7f00_0000_0000_01ff;
pub(super) const L2E_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const L2E_STD_RESERVED_MASK: u64 = 0x3f00_0000_0000_01fe;
const REFT_OFFSET_MASK: u64 = 0xffff_ffff_ffff_fe00;
const REFT_RESERVED_MASK: u64 = 0x1ff;
pub(super) const OFLAG_COPIED: u64 = 1 << 63;
const OFLAG_COMPRESSED: u64 = 1 << 62;
const OFLAG_ZERO: u64 = 1;
const ALL_ALLOC: u64 = 0xffff_ffff;
/// qemu's `QCOW_MAX_L1_SIZE`.
const MAX_L1_BYTES: u64 = 0x0200_0000;

/// What `-r` asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fix {
    pub leaks: bool,
    pub errors: bool,
}

impl Fix {
    fn any(self) -> bool {
        self.leaks || self.errors
    }
}

/// qemu's cluster types (`QCow2ClusterType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Unallocated,
    ZeroPlain,
    ZeroAlloc,
    Normal,
    Compressed,
}

/// A failed check: qemu-img prints `Check failed: WHY` and exits 1.
#[derive(Debug)]
pub struct Failed(pub String);

impl From<NoMemory> for Failed {
    fn from(_: NoMemory) -> Failed {
        Failed("Cannot allocate memory".to_string())
    }
}

/// C's `%#x`: no `0x` for zero.
fn hex(v: u64) -> String {
    if v == 0 {
        "0".to_string()
    } else {
        format!("{v:#x}")
    }
}

pub(super) struct Snapshot {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) l1_offset: u64,
    pub(super) l1_size: u32,
}

pub(super) struct Checker<'a> {
    pub(super) file: HostFile,
    pub(super) writer: Option<&'a std::fs::File>,
    pub(super) h: Header,
    pub(super) cs: u64,
    pub(super) l2_size: u64,
    pub(super) extl2: bool,
    pub(super) data_file: bool,
    pub(super) csize_shift: u32,
    pub(super) stored: Stored,
    pub(super) rebuilt: Rebuilt,
    pub(super) res: ImageCheck,
    pub(super) log: &'a mut String,
    pub(super) signaled: bool,
    /// The image was marked corrupt: no more writes (qemu drops the driver).
    pub(super) dead: bool,
    /// The repairs `calculate` makes as it goes (qemu's `fix` argument).
    pub(super) fix_now: Fix,
    /// The refcount table in use (offset, bytes).
    pub(super) old_reftable: (u64, u64),
}

pub(super) fn read_u64s(file: &HostFile, offset: u64, n: u64) -> Result<Vec<u64>, Failed> {
    let mut buf = vec![0u8; (n * 8) as usize];
    file.read_at(offset, &mut buf)
        .map_err(|_| Failed("Input/output error".to_string()))?;
    Ok(buf.chunks_exact(8).map(BigEndian::read_u64).collect())
}

/// Checks (and with `fix`, repairs) the qcow2 image in `file`, whose
/// header qemu's open checks accepted. `writer` is the same file opened
/// for writing when repairing.
pub fn check(
    file: &HostFile,
    writer: Option<&std::fs::File>,
    fix: Fix,
    log: &mut String,
) -> Result<ImageCheck, Failed> {
    let mut head = [0u8; 112];
    file.read_at(0, &mut head)
        .map_err(|_| Failed("Input/output error".to_string()))?;
    let mut h = Header::parse(&head).ok_or_else(|| Failed("Invalid argument".to_string()))?;
    if h.version < 3 {
        h.incompatible_features = 0;
        h.header_length = V2_HEADER_LENGTH;
        h.refcount_order = 4;
    }
    let cs = h.cluster_size();
    let extl2 = h.incompatible_features & INCOMPAT_EXTL2 != 0;
    let file_clusters = file.len().div_ceil(cs);
    if file_clusters > i32::MAX as u64 {
        return Err(Failed("File too large".to_string()));
    }
    let table_entries = u64::from(h.refcount_table_clusters) * cs / 8;
    let table = read_u64s(file, h.refcount_table_offset, table_entries)?;
    // Our own handle: a rebuild grows the file and reopens it.
    let file = HostFile::open(file.name()).map_err(|e| Failed(e.to_string()))?;
    let mut c = Checker {
        file,
        writer,
        cs,
        l2_size: cs / if extl2 { 16 } else { 8 },
        extl2,
        data_file: h.incompatible_features & INCOMPAT_DATA_FILE != 0,
        csize_shift: 62 - (h.cluster_bits - 8),
        stored: Stored::new(table, h.cluster_bits, h.refcount_order),
        rebuilt: Rebuilt::new(file_clusters, h.refcount_order),
        res: ImageCheck::default(),
        log,
        signaled: false,
        dead: false,
        fix_now: Fix::default(),
        old_reftable: (h.refcount_table_offset, table_entries * 8),
        h,
    };
    c.res.total_clusters = c.h.virtual_size().div_ceil(cs);
    c.fix_now = fix;
    let mut rebuild = c.calculate()?;
    c.fix_now = Fix::default();
    let pre = c.res.clone();
    let mut highest = c.compare(Fix::default(), &mut rebuild);
    if rebuild && fix.errors {
        highest = c.rebuild_and_recount()?;
    } else if fix.any() {
        if rebuild {
            c.log
                .push_str("ERROR need to rebuild refcount structures\n");
            return Err(Failed("Input/output error".to_string()));
        }
        if c.res.leaks != 0 || c.res.corruptions != 0 {
            c.res = pre;
            highest = c.compare(fix, &mut rebuild);
        }
    }
    c.oflag_copied(fix)?;
    c.res.image_end_offset = (highest + 1) * cs;
    if fix.any() && c.res.check_errors == 0 && c.res.corruptions == 0 {
        c.mark_clean()?;
    }
    Ok(c.res)
}

impl Checker<'_> {
    pub(super) fn offset_in_cluster(&self, v: u64) -> u64 {
        v & (self.cs - 1)
    }

    /// qemu's `qcow2_inc_refcounts_imrt`.
    pub(super) fn inc(&mut self, offset: u64, size: u64) -> Result<(), Failed> {
        if size == 0 {
            return Ok(());
        }
        // The last cluster may be partly past the end of the file; a
        // reference a whole cluster or more past it is not counted.
        if i128::from(offset) + i128::from(size) - i128::from(self.file.len())
            >= i128::from(self.cs)
        {
            let _ = writeln!(
                self.log,
                "ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset {offset:#x} size {size:#x}"
            );
            self.res.corruptions += 1;
            return Ok(());
        }
        let start = offset & !(self.cs - 1);
        let last = offset.saturating_add(size - 1) & !(self.cs - 1);
        let mut at = start;
        while at <= last {
            let k = at / self.cs;
            let r = self.rebuilt.get(k);
            if r == self.rebuilt.max {
                let _ = writeln!(self.log, "ERROR: overflow cluster offset={at:#x}");
                self.log.push_str(
                    "Use qemu-img amend to increase the refcount entry width or qemu-img convert to create a clean copy if the image cannot be opened for writing\n",
                );
                self.res.corruptions += 1;
            } else {
                self.rebuilt.set(k, r + 1)?;
            }
            at = match at.checked_add(self.cs) {
                Some(a) => a,
                None => break,
            };
        }
        Ok(())
    }

    pub(super) fn kind(&self, e: u64) -> Kind {
        if e & OFLAG_COMPRESSED != 0 {
            Kind::Compressed
        } else if e & OFLAG_ZERO != 0 && !self.extl2 {
            if e & L2E_OFFSET_MASK != 0 {
                Kind::ZeroAlloc
            } else {
                Kind::ZeroPlain
            }
        } else if e & L2E_OFFSET_MASK == 0 {
            if self.data_file && e & OFLAG_COPIED != 0 {
                Kind::Normal
            } else {
                Kind::Unallocated
            }
        } else {
            Kind::Normal
        }
    }

    /// Reads the L2 table at `offset`: (entry, bitmap) pairs.
    fn read_l2(&self, offset: u64) -> Result<Vec<(u64, u64)>, Failed> {
        let words = read_u64s(&self.file, offset, self.cs / 8)?;
        Ok(if self.extl2 {
            words.chunks_exact(2).map(|w| (w[0], w[1])).collect()
        } else {
            words.into_iter().map(|w| (w, 0)).collect()
        })
    }

    /// `calculate_refcounts`; returns whether a rebuild is needed.
    pub(super) fn calculate(&mut self) -> Result<bool, Failed> {
        self.inc(0, self.cs)?;
        let (l1o, l1s) = (self.h.l1_table_offset, self.h.l1_size);
        self.check_l1(l1o, l1s, true)?;
        let snapshots = self.snapshots()?;
        if self.data_file && !snapshots.is_empty() {
            let _ = writeln!(
                self.log,
                "ERROR {} snapshots in image with data file",
                snapshots.len()
            );
            self.res.corruptions += 1;
        }
        let mut table_end = self.h.snapshots_offset;
        for (sn, end) in &snapshots {
            table_end = *end;
            if self.offset_in_cluster(sn.l1_offset) != 0 {
                let _ = writeln!(
                    self.log,
                    "ERROR snapshot {} ({}) l1_offset={}: L1 table is not cluster aligned; snapshot table entry corrupted",
                    sn.id,
                    sn.name,
                    hex(sn.l1_offset)
                );
                self.res.corruptions += 1;
                continue;
            }
            if u64::from(sn.l1_size) > MAX_L1_BYTES / 8 {
                let _ = writeln!(
                    self.log,
                    "ERROR snapshot {} ({}) l1_size={}: L1 table is too large; snapshot table entry corrupted",
                    sn.id,
                    sn.name,
                    hex(u64::from(sn.l1_size))
                );
                self.res.corruptions += 1;
                continue;
            }
            self.check_l1(sn.l1_offset, sn.l1_size, false)?;
        }
        self.inc(self.h.snapshots_offset, table_end - self.h.snapshots_offset)?;
        self.inc(
            self.h.refcount_table_offset,
            self.stored.table.len() as u64 * 8,
        )?;
        let (crypto, bitmaps) = self.extensions();
        if let Some((offset, length)) = crypto {
            self.inc(offset, length)?;
        }
        if let Some((n, size, offset)) = bitmaps
            && n != 0
        {
            self.check_bitmaps(n, size, offset)?;
        }
        self.check_refblocks()
    }

    /// `check_refcounts_l1`: `active` counts the cluster statistics.
    fn check_l1(&mut self, offset: u64, size: u32, active: bool) -> Result<(), Failed> {
        if size == 0 {
            return Ok(());
        }
        self.inc(offset, u64::from(size) * 8)?;
        let l1 = read_u64s(&self.file, offset, u64::from(size))?;
        for e in l1 {
            if e == 0 {
                continue;
            }
            if e & L1E_RESERVED_MASK != 0 {
                let _ = writeln!(
                    self.log,
                    "ERROR found L1 entry with reserved bits set: {e:x}"
                );
                self.res.corruptions += 1;
            }
            let l2 = e & L1E_OFFSET_MASK;
            self.inc(l2, self.cs)?;
            if self.offset_in_cluster(l2) != 0 {
                let _ = writeln!(
                    self.log,
                    "ERROR l2_offset={l2:x}: Table is not cluster aligned; L1 entry corrupted"
                );
                self.res.corruptions += 1;
            }
            self.check_l2(l2, active)?;
        }
        Ok(())
    }

    /// `check_refcounts_l2`.
    fn check_l2(&mut self, offset: u64, active: bool) -> Result<(), Failed> {
        let table = self.read_l2(offset)?;
        let mut next = 0u64;
        for (i, &(mut e, bitmap)) in table.iter().enumerate().take(self.l2_size as usize) {
            let kind = self.kind(e);
            if kind != Kind::Compressed && e & L2E_STD_RESERVED_MASK != 0 {
                let _ = writeln!(
                    self.log,
                    "ERROR found l2 entry with reserved bits set: {e:x}"
                );
                self.res.corruptions += 1;
            }
            match kind {
                Kind::Compressed => {
                    let mask = (1u64 << self.csize_shift) - 1;
                    if e & OFLAG_COPIED != 0 {
                        let _ = writeln!(
                            self.log,
                            "ERROR: coffset={:#x}: copied flag must never be set for compressed clusters",
                            e & mask
                        );
                        e &= !OFLAG_COPIED;
                        self.res.corruptions += 1;
                    }
                    if self.data_file {
                        let _ = writeln!(
                            self.log,
                            "ERROR compressed cluster {i} with data file, entry={e:#x}"
                        );
                        self.res.corruptions += 1;
                        continue;
                    }
                    if bitmap != 0 {
                        let _ = writeln!(
                            self.log,
                            "ERROR compressed cluster {i} with non-zero subcluster allocation bitmap, entry={e:#x}"
                        );
                        self.res.corruptions += 1;
                        continue;
                    }
                    let coffset = e & mask;
                    let csize_mask = (1u64 << (self.h.cluster_bits - 8)) - 1;
                    let sectors = ((e >> self.csize_shift) & csize_mask) + 1;
                    let csize = sectors * 512 - (coffset & 511);
                    self.inc(coffset, csize)?;
                    if active {
                        self.res.allocated_clusters += 1;
                        self.res.compressed_clusters += 1;
                        self.res.fragmented_clusters += 1;
                    }
                }
                Kind::ZeroAlloc | Kind::Normal => {
                    let off = e & L2E_OFFSET_MASK;
                    if (bitmap >> 32) & bitmap != 0 {
                        self.res.corruptions += 1;
                        let _ = writeln!(
                            self.log,
                            "ERROR offset={off:x}: Allocated cluster has corrupted subcluster allocation bitmap"
                        );
                    }
                    if self.offset_in_cluster(off) != 0 {
                        self.res.corruptions += 1;
                        let data = if self.extl2 {
                            bitmap & ALL_ALLOC != 0
                        } else {
                            e & OFLAG_ZERO == 0
                        };
                        if data {
                            let _ = writeln!(
                                self.log,
                                "ERROR offset={off:x}: Data cluster is not properly aligned; L2 entry corrupted."
                            );
                        } else {
                            let fixing = self.fix_now.errors;
                            let _ = writeln!(
                                self.log,
                                "{} offset={off:x}: Preallocated cluster is not properly aligned; L2 entry corrupted.",
                                if fixing { "Repairing" } else { "ERROR" }
                            );
                            if fixing {
                                // A plain zero cluster (all-unallocated with
                                // extended L2 entries), written at once.
                                let new = if self.extl2 { 0 } else { OFLAG_ZERO };
                                let at = offset + i as u64 * if self.extl2 { 16 } else { 8 };
                                if self.write_sync(at, &new.to_be_bytes()).is_ok() {
                                    self.res.corruptions -= 1;
                                    self.res.corruptions_fixed += 1;
                                    continue;
                                }
                                let _ = writeln!(
                                    self.log,
                                    "ERROR: Failed to overwrite L2 table entry: Input/output error"
                                );
                            }
                        }
                    }
                    if active {
                        self.res.allocated_clusters += 1;
                        if next != 0 && off != next {
                            self.res.fragmented_clusters += 1;
                        }
                        next = off + self.cs;
                    }
                    if !self.data_file {
                        self.inc(off, self.cs)?;
                    }
                }
                Kind::ZeroPlain => {}
                Kind::Unallocated => {
                    if bitmap & ALL_ALLOC != 0 {
                        self.res.corruptions += 1;
                        self.log.push_str(
                            "ERROR: Unallocated cluster has non-zero subcluster allocation map\n",
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// `check_refblocks`.
    fn check_refblocks(&mut self) -> Result<bool, Failed> {
        let mut rebuild = false;
        for i in 0..self.stored.table.len() {
            let e = self.stored.table[i];
            let offset = e & REFT_OFFSET_MASK;
            let cluster = offset / self.cs;
            if e & REFT_RESERVED_MASK != 0 {
                let _ = writeln!(
                    self.log,
                    "ERROR refcount table entry {i} has reserved bits set"
                );
                self.res.corruptions += 1;
                rebuild = true;
                continue;
            }
            if self.offset_in_cluster(offset) != 0 {
                let _ = writeln!(
                    self.log,
                    "ERROR refcount block {i} is not cluster aligned; refcount table entry corrupted"
                );
                self.res.corruptions += 1;
                rebuild = true;
                continue;
            }
            if cluster >= self.rebuilt.nb {
                self.res.corruptions += 1;
                let _ = writeln!(self.log, "ERROR refcount block {i} is outside image");
                rebuild = true;
                continue;
            }
            if offset != 0 {
                self.inc(offset, self.cs)?;
                let r = self.rebuilt.get(cluster);
                if r != 1 {
                    let _ = writeln!(self.log, "ERROR refcount block {i} refcount={r}");
                    self.res.corruptions += 1;
                    rebuild = true;
                }
            }
        }
        Ok(rebuild)
    }

    /// `qcow2_get_refcount` with qemu's corruption report.
    fn stored_count(&mut self, k: u64) -> Result<u64, String> {
        match self.stored.get(&self.file, k) {
            Ok(v) => Ok(v),
            Err(DiskError::Unaligned { block, index }) => {
                if !self.signaled {
                    let what = format!(
                        "Refblock offset {} unaligned (reftable index: {})",
                        hex(block),
                        hex(index)
                    );
                    self.signaled = true;
                    if self.writer.is_some() {
                        // Writable: qemu marks the image corrupt and
                        // stops every further write.
                        let _ = writeln!(
                            self.log,
                            "qcow2: Marking image as corrupt: {what}; further corruption events will be suppressed"
                        );
                        self.mark_corrupt();
                    } else {
                        let _ = writeln!(
                            self.log,
                            "qcow2: Image is corrupt: {what}; further non-fatal corruption events will be suppressed"
                        );
                    }
                }
                Err("Input/output error".to_string())
            }
            Err(DiskError::Io) => Err("Input/output error".to_string()),
        }
    }

    /// `compare_refcounts`; returns the highest cluster in use.
    pub(super) fn compare(&mut self, fix: Fix, rebuild: &mut bool) -> u64 {
        let mut highest = 0;
        let dense = self.rebuilt.dense_len();
        let mut candidates: Vec<u64> = self.rebuilt.past_eof().collect();
        // Stored counts past the end of the file, where qemu's grown
        // array reaches them.
        if self.rebuilt.nb > dense {
            candidates.extend(self.stored_nonzero(dense, self.rebuilt.nb));
            candidates.sort_unstable();
            candidates.dedup();
        }
        let iter = (0..dense).chain(candidates);
        for i in iter {
            let r1 = match self.stored_count(i) {
                Ok(v) => v,
                Err(why) => {
                    let _ = writeln!(self.log, "Can't get refcount for cluster {i}: {why}");
                    self.res.check_errors += 1;
                    continue;
                }
            };
            let r2 = self.rebuilt.get(i);
            if r1 > 0 || r2 > 0 {
                highest = i;
            }
            if r1 == r2 {
                continue;
            }
            let fixing = if r1 == 0 {
                *rebuild = true;
                false
            } else {
                (r1 > r2 && fix.leaks) || (r1 < r2 && fix.errors)
            };
            let word = if fixing {
                "Repairing"
            } else if r1 < r2 {
                "ERROR"
            } else {
                "Leaked"
            };
            let _ = writeln!(self.log, "{word} cluster {i} refcount={r1} reference={r2}");
            if fixing
                && let Some(w) = self.writer
                && self.stored.set(&self.file, w, i, r2).is_ok()
            {
                if r1 > r2 {
                    self.res.leaks_fixed += 1;
                } else {
                    self.res.corruptions_fixed += 1;
                }
                continue;
            }
            if r1 < r2 {
                self.res.corruptions += 1;
            } else {
                self.res.leaks += 1;
            }
        }
        highest
    }

    /// Clusters in [from, to) whose stored count is not zero.
    fn stored_nonzero(&mut self, from: u64, to: u64) -> Vec<u64> {
        let per = (self.cs * 8) >> self.h.refcount_order;
        let mut out = Vec::new();
        let first = from / per;
        for ti in first..self.stored.table.len() as u64 {
            if ti * per >= to || out.len() > super::refs::MAX_PAST_EOF {
                break;
            }
            for k in (ti * per).max(from)..((ti + 1) * per).min(to) {
                if matches!(self.stored.get(&self.file, k), Ok(v) if v != 0) {
                    out.push(k);
                }
            }
        }
        out
    }
}
