//! Where qemu-img puts every cluster of a new qcow2 image.
//!
//! qemu creates a qcow2 image in steps (`qcow2_co_create`): it writes a
//! header cluster, a one-cluster refcount table and one refcount block
//! (clusters 0, 1, 2), then "truncates" the empty image to its size, which
//! allocates the L1 table and, with preallocation, the L2 tables, the data
//! clusters and whatever refcount blocks and refcount tables those need.
//! Every allocation goes through qemu's cluster allocator
//! (`block/qcow2-refcount.c`): a first-fit search from a moving "free
//! cluster index", refcount blocks that are allocated when a cluster
//! without one is first referenced (the allocation is then restarted), and
//! a refcount table that is replaced by a bigger one at the end of the
//! image when it is full (the old one is freed, leaving a hole that later
//! allocations fill).
//!
//! This module replays those rules, not cluster by cluster but on ranges:
//! the set of used clusters is a map of intervals, so a terabyte image
//! costs one step per L2 table or refcount block. The result is a
//! [`Layout`]: every structure's position and enough state to write the
//! bytes qemu would have written.

pub use super::layout::{DataFileLayout, Fill, Geometry, Mode, Run, StaleTable};
use std::collections::BTreeMap;

/// qemu's `INT_MAX`.
const INT_MAX: u64 = i32::MAX as u64;
/// `BDRV_REQUEST_MAX_BYTES`: the largest single request, INT_MAX rounded
/// down to sectors.
const REQUEST_MAX_BYTES: u64 = (INT_MAX >> 9) << 9;
/// `QCOW_MAX_L1_SIZE` (32 MiB) in entries.
pub const MAX_L1_ENTRIES: u64 = (32 << 20) / 8;
/// `QCOW_MAX_REFTABLE_SIZE` (8 MiB), compared by qemu with entry counts.
const MAX_REFTABLE_SIZE: u64 = 8 << 20;
/// Upper bound of restarts of one allocation (qemu needs at most a few).
const MAX_RETRIES: u64 = 64;

/// Why a layout cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// The L1 table or the refcount table would exceed qemu's limits
    /// (qemu: EFBIG, "The image size is too large ...").
    TooLarge,
}

/// Why an allocation step stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// qemu's -EAGAIN: new metadata was allocated, search again.
    Again,
    Fatal(LayoutError),
}

impl From<LayoutError> for Stop {
    fn from(e: LayoutError) -> Self {
        Stop::Fatal(e)
    }
}

fn fatal(s: Stop) -> LayoutError {
    match s {
        Stop::Fatal(e) => e,
        // Every caller loops on Again; reaching here means it gave up.
        Stop::Again => LayoutError::TooLarge,
    }
}

/// Everything needed to write the image file (and the data file).
#[derive(Debug, Clone)]
pub struct Layout {
    pub geo: Geometry,
    /// Used clusters: interval start -> end (exclusive), merged.
    used: BTreeMap<u64, u64>,
    /// Refcount table entries as cluster indices (0: no block).
    pub reftable: Vec<u64>,
    pub reftable_cluster: u64,
    pub reftable_clusters: u64,
    max_rt_index: usize,
    /// Freed refcount tables, oldest first.
    pub stale: Vec<StaleTable>,
    pub l1_cluster: u64,
    pub l1_size: u64,
    /// L2 table cluster per L1 index (0: none); empty without L2 tables.
    pub l2: Vec<u64>,
    /// Guest-to-host mapping, in guest order.
    pub runs: Vec<Run>,
    /// Zeros written in the image file by the last cluster's COW.
    pub cow_tail: Option<(u64, u64)>,
    /// Preallocated region of the image file.
    pub fill: Option<(Fill, u64, u64)>,
    /// Final length of the image file.
    pub file_len: u64,
    pub data_file: Option<DataFileLayout>,
    fci: u64,
}

impl Layout {
    /// Lays out an image of `size` bytes (already rounded to sectors) as
    /// qemu-img 10 does. `data_file` says whether clusters live in an
    /// external data file.
    pub fn build(
        geo: Geometry,
        size: u64,
        mode: Mode,
        data_file: bool,
    ) -> Result<Layout, LayoutError> {
        let cs = geo.cluster_size();
        let mut reftable = vec![0u64; (cs / 8) as usize];
        reftable[0] = 2;
        let mut used = BTreeMap::new();
        used.insert(0, 3);
        let mut l = Layout {
            geo,
            used,
            reftable,
            reftable_cluster: 1,
            reftable_clusters: 1,
            max_rt_index: 0,
            stale: Vec::new(),
            l1_cluster: 0,
            l1_size: 0,
            l2: Vec::new(),
            runs: Vec::new(),
            cow_tail: None,
            fill: None,
            file_len: 3 * cs,
            data_file: data_file.then(DataFileLayout::default),
            fci: 3,
        };
        let l1_size = geo.l1_entries(size);
        if l1_size > INT_MAX / 8 || l1_size > MAX_L1_ENTRIES {
            return Err(LayoutError::TooLarge);
        }
        if l1_size > 0 {
            let clusters = (l1_size * 8).div_ceil(cs);
            l.l1_cluster = l.alloc_clusters(clusters).map_err(fatal)?;
            l.l1_size = l1_size;
            l.wrote(l.l1_cluster * cs + l1_size * 8);
        }
        match mode {
            Mode::Off => {
                if let Some(d) = l.data_file.as_mut() {
                    grow_data_file(d, size, None);
                }
            }
            Mode::Metadata => l.preallocate(size, None)?,
            Mode::Falloc | Mode::Full => {
                let fill = if mode == Mode::Full {
                    Fill::Zeros
                } else {
                    Fill::Falloc
                };
                if data_file {
                    l.preallocate(size, Some(fill))?;
                } else {
                    l.preallocate_file(size, fill)?;
                }
            }
        }
        Ok(l)
    }

    /// Records a write ending at byte `end` of the image file.
    fn wrote(&mut self, end: u64) {
        self.file_len = self.file_len.max(end);
    }

    /// The used interval containing `c`, or else the next one after it.
    fn used_at_or_after(&self, c: u64) -> Option<(u64, u64)> {
        if let Some((&s, &e)) = self.used.range(..=c).next_back()
            && e > c
        {
            return Some((s, e));
        }
        self.used.range(c + 1..).next().map(|(&s, &e)| (s, e))
    }

    /// True when cluster `c` has a non-zero refcount.
    pub fn is_used(&self, c: u64) -> bool {
        matches!(self.used.range(..=c).next_back(), Some((_, &e)) if e > c)
    }

    /// Calls `f(start, end)` for each used interval overlapping
    /// `[lo, hi)`, clipped to it.
    pub fn for_each_used(&self, lo: u64, hi: u64, mut f: impl FnMut(u64, u64)) {
        let first = match self.used.range(..=lo).next_back() {
            Some((&s, &e)) if e > lo => s,
            _ => lo,
        };
        for (&s, &e) in self.used.range(first..hi) {
            let a = s.max(lo);
            let b = e.min(hi);
            if a < b {
                f(a, b);
            }
        }
    }

    fn mark_used(&mut self, a: u64, b: u64) {
        if a >= b {
            return;
        }
        let mut start = a;
        let mut end = b;
        if let Some((&s, &e)) = self.used.range(..=a).next_back()
            && e >= a
        {
            start = s;
            end = end.max(e);
        }
        let overlapping: Vec<(u64, u64)> = self
            .used
            .range(start..=end)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in overlapping {
            self.used.remove(&s);
            end = end.max(e);
        }
        self.used.insert(start, end);
    }

    fn mark_free(&mut self, a: u64, b: u64) {
        if a >= b {
            return;
        }
        let mut pieces = Vec::new();
        let first = match self.used.range(..=a).next_back() {
            Some((&s, &e)) if e > a => s,
            _ => a,
        };
        let hit: Vec<(u64, u64)> = self.used.range(first..b).map(|(&s, &e)| (s, e)).collect();
        for (s, e) in hit {
            self.used.remove(&s);
            if s < a {
                pieces.push((s, a));
            }
            if e > b {
                pieces.push((b, e));
            }
        }
        for (s, e) in pieces {
            self.used.insert(s, e);
        }
        self.fci = self.fci.min(a);
    }

    fn has_block(&self, table_index: u64) -> bool {
        (table_index as usize) < self.reftable.len() && self.reftable[table_index as usize] != 0
    }

    /// `alloc_clusters_noref`: the first run of `n` free clusters at or
    /// after the free cluster index, which then points past it.
    fn alloc_noref(&mut self, n: u64) -> u64 {
        let mut c = self.fci;
        if n > 0 {
            while let Some((s, e)) = self.used_at_or_after(c) {
                // Inside a used interval, or the gap before it is too short.
                if s <= c || s - c < n {
                    c = e;
                } else {
                    break;
                }
            }
        }
        self.fci = c + n;
        c
    }

    /// `update_refcount(+1)` over `n` clusters from `start`. Allocating a
    /// missing refcount block undoes the increments made so far and
    /// returns `Again`, as qemu does.
    fn update_inc(&mut self, start: u64, n: u64) -> Result<(), Stop> {
        let rbs = self.geo.refblock_entries();
        let end = start + n;
        let mut c = start;
        while c < end {
            let ti = c / rbs;
            if !self.has_block(ti) {
                let stop = self.alloc_refcount_block(c);
                // qemu restarts the search at the clusters it just tried.
                if stop == Stop::Again {
                    self.fci = self.fci.min(start);
                }
                if c > start {
                    self.mark_free(start, c);
                }
                return Err(stop);
            }
            let seg_end = end.min((ti + 1) * rbs);
            self.mark_used(c, seg_end);
            c = seg_end;
        }
        Ok(())
    }

    /// `alloc_refcount_block` for a cluster whose block does not exist.
    fn alloc_refcount_block(&mut self, cluster: u64) -> Stop {
        let rbs = self.geo.refblock_entries();
        let rti = cluster / rbs;
        let block = self.alloc_noref(1);
        if block / rbs == rti {
            self.mark_used(block, block + 1);
        } else if let Err(stop) = self.update_inc(block, 1) {
            return stop;
        }
        let cs = self.geo.cluster_size();
        self.wrote((block + 1) * cs);
        if (rti as usize) < self.reftable.len() {
            self.reftable[rti as usize] = block;
            self.max_rt_index = self.max_rt_index.max(rti as usize);
            return Stop::Again;
        }
        let blocks_used = (cluster + 1).max(block + 1).div_ceil(rbs);
        match self.refcount_area(blocks_used * rbs, 0, false, Some((rti, block))) {
            Ok(_) => Stop::Again,
            Err(e) => e,
        }
    }

    /// `qcow2_refcount_metadata_size`: refcount blocks needed to cover
    /// `clusters` and themselves (and their table).
    fn refblocks_needed(&self, clusters: u64, generous: bool) -> u64 {
        let per_table_cluster = self.geo.cluster_size() / 8;
        let rbs = self.geo.refblock_entries();
        let mut clusters = clusters;
        let mut generous = generous;
        let (mut table, mut blocks, mut n) = (0u64, 0u64, 0u64);
        loop {
            let last = n;
            blocks = (clusters + table + blocks).div_ceil(rbs);
            table = blocks.div_ceil(per_table_cluster);
            n = clusters + blocks + table;
            if n == last && generous {
                clusters += table.div_ceil(2);
                n = 0;
                generous = false;
            }
            if n == last {
                return blocks;
            }
        }
    }

    /// `qcow2_refcount_area`: new refcount blocks and a new refcount table
    /// at `start`, covering themselves and `additional` clusters after
    /// them. Returns the first cluster after them.
    fn refcount_area(
        &mut self,
        start: u64,
        additional: u64,
        exact: bool,
        new_block: Option<(u64, u64)>,
    ) -> Result<u64, Stop> {
        let cs = self.geo.cluster_size();
        let rbs = self.geo.refblock_entries();
        let total = self.refblocks_needed(start + additional, !exact);
        if total > MAX_REFTABLE_SIZE {
            return Err(LayoutError::TooLarge.into());
        }
        let area_index = start / rbs;
        let per_cluster = cs / 8;
        let mut table_size = if exact {
            total
        } else {
            total + total.div_ceil(2)
        };
        table_size = table_size.div_ceil(per_cluster) * per_cluster;
        if table_size > MAX_REFTABLE_SIZE {
            return Err(LayoutError::TooLarge.into());
        }
        let table_clusters = table_size / per_cluster;
        let mut table = vec![0u64; table_size as usize];
        let keep = if table_size as usize > self.max_rt_index {
            self.max_rt_index + 1
        } else {
            table_size as usize
        }
        .min(self.reftable.len());
        table[..keep].copy_from_slice(&self.reftable[..keep]);
        if let Some((i, b)) = new_block {
            table[i as usize] = b;
        }
        let mut next = start;
        for entry in table
            .iter_mut()
            .take(total as usize)
            .skip(area_index as usize)
        {
            if *entry == 0 {
                *entry = next;
                next += 1;
            }
        }
        let table_cluster = next;
        let end = table_cluster + table_clusters;
        self.mark_used(start, end);
        self.wrote(end * cs);
        let old_cluster = self.reftable_cluster;
        let old_clusters = self.reftable_clusters;
        let old = std::mem::replace(&mut self.reftable, table);
        self.stale.push(StaleTable {
            cluster: old_cluster,
            clusters: old_clusters,
            entries: old,
        });
        self.reftable_cluster = table_cluster;
        self.reftable_clusters = table_clusters;
        self.max_rt_index = self.reftable.iter().rposition(|&e| e != 0).unwrap_or(0);
        self.mark_free(old_cluster, old_cluster + old_clusters);
        Ok(end)
    }

    /// How many restarts an allocation of `n` clusters may need: one per
    /// refcount block it creates, plus a few for refcount table growth.
    fn retry_bound(&self, n: u64) -> u64 {
        MAX_RETRIES + 4 * (n / self.geo.refblock_entries() + 1)
    }

    /// `qcow2_alloc_clusters`: `n` clusters anywhere.
    fn alloc_clusters(&mut self, n: u64) -> Result<u64, Stop> {
        for _ in 0..self.retry_bound(n) {
            let c = self.alloc_noref(n);
            match self.update_inc(c, n) {
                Ok(()) => return Ok(c),
                Err(Stop::Again) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(LayoutError::TooLarge.into())
    }

    /// `qcow2_alloc_clusters_at`: as many of `n` clusters from `start` as
    /// are free (0 when `start` is used). Leaves the free cluster index.
    fn alloc_at(&mut self, start: u64, n: u64) -> Result<u64, Stop> {
        for _ in 0..self.retry_bound(n) {
            let free = match self.used_at_or_after(start) {
                Some((s, _)) if s <= start => 0,
                Some((s, _)) => n.min(s - start),
                None => n,
            };
            match self.update_inc(start, free) {
                Ok(()) => return Ok(free),
                Err(Stop::Again) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(LayoutError::TooLarge.into())
    }

    /// Allocates the L2 table for L1 index `l1` if it has none
    /// (`l2_allocate`).
    fn ensure_l2(&mut self, l1: u64) -> Result<(), Stop> {
        if self.l2.is_empty() {
            self.l2 = vec![0; self.l1_size as usize];
        }
        let Some(&existing) = self.l2.get(l1 as usize) else {
            return Err(LayoutError::TooLarge.into());
        };
        if existing == 0 {
            let c = self.alloc_clusters(1)?;
            self.l2[l1 as usize] = c;
            self.wrote((c + 1) * self.geo.cluster_size());
        }
        Ok(())
    }

    fn push_run(&mut self, run: Run) {
        if let Some(last) = self.runs.last_mut()
            && last.guest + last.count == run.guest
            && last.host + last.count == run.host
        {
            last.count += run.count;
            return;
        }
        self.runs.push(run);
    }

    /// `preallocate_co`: L2 tables and (without a data file) data
    /// clusters for the whole guest, chunk by chunk; then the COW of a
    /// partial last cluster and the final growth of the file that holds
    /// the data (`fill` for the data file: falloc or full).
    fn preallocate(&mut self, size: u64, fill: Option<Fill>) -> Result<(), LayoutError> {
        let cs = self.geo.cluster_size();
        let chunk = (INT_MAX / cs) * cs;
        let mut offset = 0;
        let mut bytes = size;
        let mut end = 0;
        while bytes > 0 {
            let mut cur = bytes.min(chunk);
            let host = self.alloc_host_offset(offset, &mut cur).map_err(fatal)?;
            end = host + cur;
            bytes -= cur;
            offset += cur;
        }
        if size == 0 {
            return Ok(());
        }
        // The last cluster's tail beyond the image end is copied (zeros).
        let sub = self.geo.subcluster_size();
        let in_cluster = size % cs;
        let tail = if !in_cluster.is_multiple_of(sub) {
            let last_guest = (size - 1) / cs;
            let host = self
                .runs
                .iter()
                .rev()
                .find(|r| r.guest <= last_guest && last_guest < r.guest + r.count)
                .map(|r| r.host + (last_guest - r.guest))
                .unwrap_or(0);
            let from = host * cs + in_cluster;
            Some((from, host * cs + in_cluster.div_ceil(sub) * sub - from))
        } else {
            None
        };
        match self.data_file.as_mut() {
            Some(d) => {
                if let Some((off, len)) = tail {
                    d.cow_tail = Some((off, len));
                    d.len = d.len.max(off + len);
                }
                grow_data_file(d, end, fill);
            }
            None => {
                if let Some((off, len)) = tail {
                    self.cow_tail = Some((off, len));
                    self.wrote(off + len);
                }
                self.file_len = self.file_len.max(end);
            }
        }
        Ok(())
    }

    /// `qcow2_alloc_host_offset` for `*bytes` from guest `offset`;
    /// shortens `*bytes` to what is contiguous on the host and returns
    /// the host offset.
    fn alloc_host_offset(&mut self, offset: u64, bytes: &mut u64) -> Result<u64, Stop> {
        let cs = self.geo.cluster_size();
        let l2_entries = self.geo.l2_entries();
        let data_file = self.data_file.is_some();
        let mut start = offset;
        let mut remaining = *bytes;
        let mut cluster_offset: Option<u64> = None;
        let mut host: Option<u64> = None;
        let mut cur = 0;
        loop {
            if host.is_none() && cluster_offset.is_some() {
                host = cluster_offset;
            }
            start += cur;
            remaining -= cur;
            if let Some(c) = cluster_offset.as_mut() {
                *c += cur;
            }
            if remaining == 0 {
                break;
            }
            cur = remaining;
            let guest = start / cs;
            self.ensure_l2(guest / l2_entries)?;
            let in_cluster = start % cs;
            let n = (in_cluster + cur)
                .div_ceil(cs)
                .min(l2_entries - guest % l2_entries)
                .min(REQUEST_MAX_BYTES >> self.geo.cluster_bits);
            let (host_cluster, n) = if data_file {
                (guest, n)
            } else if let Some(c) = cluster_offset {
                let want = c / cs;
                let got = self.alloc_at(want, n)?;
                (want, got)
            } else {
                (self.alloc_clusters(n)?, n)
            };
            if n == 0 {
                break;
            }
            let avail = n * cs;
            let nb = (cur + in_cluster).min(avail);
            cluster_offset = Some(host_cluster * cs + in_cluster);
            cur = cur.min(nb - in_cluster);
            self.push_run(Run {
                guest,
                host: host_cluster,
                count: n,
            });
        }
        *bytes -= remaining;
        Ok(host.unwrap_or(0))
    }

    /// The falloc/full path of `qcow2_co_truncate` without a data file:
    /// a refcount area sized for all data, the data clusters right after
    /// it (preallocated), then the L2 tables wherever the allocator puts
    /// them.
    fn preallocate_file(&mut self, size: u64, fill: Fill) -> Result<(), LayoutError> {
        let cs = self.geo.cluster_size();
        let l2_entries = self.geo.l2_entries();
        let file_clusters = self.file_len.div_ceil(cs);
        let old_clusters = match self.last_used_below(file_clusters) {
            Some(c) => c + 1,
            None => file_clusters,
        };
        let data = size.div_ceil(cs);
        let l2_tables = data.div_ceil(l2_entries) + 1;
        let start = self
            .refcount_area(old_clusters, data + l2_tables, true, None)
            .map_err(fatal)?;
        let got = self.alloc_at(start, data).map_err(fatal)?;
        if got != data {
            return Err(LayoutError::TooLarge);
        }
        let new_len = (start + data) * cs;
        if new_len > self.file_len {
            self.fill = Some((fill, self.file_len, new_len));
            self.file_len = new_len;
        }
        let mut host = start;
        let mut guest = 0;
        let mut left = data;
        while left > 0 {
            let n = left.min(l2_entries - guest % l2_entries);
            self.ensure_l2(guest / l2_entries).map_err(fatal)?;
            self.push_run(Run {
                guest,
                host,
                count: n,
            });
            guest += n;
            host += n;
            left -= n;
        }
        Ok(())
    }

    /// The last used cluster below `limit` (`qcow2_get_last_cluster`).
    fn last_used_below(&self, limit: u64) -> Option<u64> {
        if limit == 0 {
            return None;
        }
        self.used
            .range(..limit)
            .next_back()
            .map(|(_, &e)| e.min(limit) - 1)
    }

    /// The host cluster of guest cluster `g`, if mapped. `runs` is in
    /// guest order.
    pub fn host_of(&self, g: u64) -> Option<u64> {
        let i = self.runs.partition_point(|r| r.guest + r.count <= g);
        let r = self.runs.get(i)?;
        (r.guest <= g).then(|| r.host + (g - r.guest))
    }

    /// Index of the first run that ends after guest cluster `g`.
    pub fn first_run_after(&self, g: u64) -> usize {
        self.runs.partition_point(|r| r.guest + r.count <= g)
    }
}

/// The data file grows to `end` (file-posix truncate): with preallocation
/// the new part is filled; a file growing from empty without
/// preallocation or with fallocate also gets its first block written
/// (`allocate_first_block`, for qemu's alignment probing).
fn grow_data_file(d: &mut DataFileLayout, end: u64, fill: Option<Fill>) {
    if end <= d.len {
        return;
    }
    if d.len == 0 && fill != Some(Fill::Zeros) {
        let n = if end < 4096 { 512 } else { 4096 };
        d.first_block = Some((0, n));
    }
    if let Some(f) = fill {
        d.fill = Some((f, d.len, end));
    }
    d.len = end;
}

#[cfg(test)]
#[path = "alloc_tests.rs"]
mod tests;
