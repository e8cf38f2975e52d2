//! `-r all` when the refcount structure itself is damaged: qemu's
//! `rebuild_refcount_structure`. New refcount blocks (slices of the
//! rebuilt counts) and a new refcount table are written to free
//! clusters, then the header is switched to them with one synced write:
//! the old structure stays intact until then, so a kill at any point
//! leaves an image that opens. The old structure is then leaked and
//! freed by a leak repair, as qemu does.

use super::check::{Checker, Failed, Fix, L1E_OFFSET_MASK, read_u64s};
use super::refs::{Rebuilt, Stored, set_entry};
use crate::image::HostFile;
use crate::qapi::ImageCheck;
use std::fmt::Write as _;
use std::os::unix::fs::FileExt;

/// The program name as invoked (qemu's error_report prefix).
fn program() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "diskforge".to_string())
}

impl Checker<'_> {
    /// `alloc_clusters_imrt`: `count` free clusters in the rebuilt
    /// counts from `*first_free` on (growing past the end), marked used.
    fn alloc_imrt(&mut self, count: u64, first_free: &mut u64) -> Result<u64, Failed> {
        let mut cluster = *first_free;
        let mut free = 0u64;
        let mut first_gap = true;
        while cluster < self.rebuilt.nb && free < count {
            if self.rebuilt.get(cluster) == 0 {
                free += 1;
                if first_gap {
                    *first_free = cluster;
                    first_gap = false;
                }
            } else {
                free = 0;
            }
            cluster += 1;
        }
        let start = cluster - free;
        for k in start..start + count {
            self.rebuilt.set(k, 1)?;
        }
        Ok(start * self.cs)
    }

    /// `rebuild_refcounts_write_refblocks` for clusters [first, end):
    /// returns whether the new table had to grow.
    fn write_refblocks(
        &mut self,
        first: u64,
        mut end: u64,
        table: &mut Vec<u64>,
    ) -> Result<bool, Failed> {
        let order = self.h.refcount_order;
        let block_bits = self.h.cluster_bits + 3 - order;
        let per = 1u64 << block_bits;
        let mut first_free = 0u64;
        let mut grown = false;
        let mut cluster = first;
        while cluster < end {
            if self.rebuilt.get(cluster) == 0 {
                cluster += 1;
                continue;
            }
            let index = cluster >> block_bits;
            let start = index << block_bits;
            let offset = match table.get(index as usize) {
                Some(&o) if o != 0 => o,
                _ => {
                    first_free = first_free.max(start);
                    let o = self.alloc_imrt(1, &mut first_free)?;
                    end = end.max(o / self.cs + 1);
                    if table.len() as u64 <= index {
                        let entries = ((index + 1) * 8).next_multiple_of(self.cs) / 8;
                        table.resize(entries as usize, 0);
                        grown = true;
                    }
                    table[index as usize] = o;
                    o
                }
            };
            let mut block = vec![0u8; self.cs as usize];
            for i in 0..per {
                set_entry(&mut block, order, i, self.rebuilt.get(start + i));
            }
            self.write_at(offset, &block, "ERROR writing refblock")?;
            cluster = start + per;
        }
        Ok(grown)
    }

    /// qemu's `qcow2_check_metadata_overlap` (default mode) for a write
    /// of the rebuild, against the metadata still in use: the name of
    /// the first kind of structure it would overwrite.
    fn overlap(&self, offset: u64, size: u64) -> Result<Option<&'static str>, Failed> {
        let cs = self.cs;
        let hits = |start: u64, len: u64| {
            len != 0
                && offset < start.saturating_add(len).next_multiple_of(cs)
                && start & !(cs - 1) < offset + size
        };
        if hits(0, cs) {
            return Ok(Some("qcow2_header"));
        }
        if hits(self.h.l1_table_offset, u64::from(self.h.l1_size) * 8) {
            return Ok(Some("active L1 table"));
        }
        if hits(self.old_reftable.0, self.old_reftable.1) {
            return Ok(Some("refcount table"));
        }
        let l1 = read_u64s(
            &self.file,
            self.h.l1_table_offset,
            u64::from(self.h.l1_size),
        )?;
        if l1
            .iter()
            .map(|e| e & L1E_OFFSET_MASK)
            .any(|l2| l2 != 0 && hits(l2, cs))
        {
            return Ok(Some("active L2 table"));
        }
        if self
            .stored
            .table
            .iter()
            .map(|e| e & 0xffff_ffff_ffff_fe00)
            .any(|b| b != 0 && hits(b, cs))
        {
            return Ok(Some("refcount block"));
        }
        Ok(None)
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8], what: &str) -> Result<(), Failed> {
        let Some(w) = self.writer else {
            return Err(Failed("Permission denied".to_string()));
        };
        // The header switch is not checked (qemu writes it directly).
        if !self.dead
            && offset != 48
            && let Some(kind) = self.overlap(offset, bytes.len() as u64)?
        {
            let _ = writeln!(
                self.log,
                "qcow2: Marking image as corrupt: Preventing invalid write on metadata (overlaps with {kind}); further corruption events will be suppressed"
            );
            self.mark_corrupt();
        }
        let result = if self.dead {
            Err("Input/output error".to_string())
        } else {
            w.write_all_at(bytes, offset)
                .map_err(|e| crate::error::describe_io(&e))
        };
        result.map_err(|why| {
            // qemu reports this one through error_report (program prefix).
            self.log
                .push_str(&format!("{}: {what}: {why}\n", program()));
            self.res.check_errors += 1;
            Failed(why)
        })
    }

    /// `rebuild_refcount_structure`.
    fn rebuild_structure(&mut self) -> Result<(), Failed> {
        let mut table = Vec::new();
        let nb = self.rebuilt.nb;
        self.write_refblocks(0, nb, &mut table)?;
        let (offset, clusters) = loop {
            let mut first_free = 0;
            let clusters = (table.len() as u64 * 8).div_ceil(self.cs);
            let offset = self.alloc_imrt(clusters, &mut first_free)?;
            let start = offset / self.cs;
            if !self.write_refblocks(start, start + clusters, &mut table)? {
                break (offset, clusters);
            }
        };
        let mut bytes: Vec<u8> = table.iter().flat_map(|e| e.to_be_bytes()).collect();
        bytes.resize((clusters * self.cs) as usize, 0);
        self.write_at(offset, &bytes[..table.len() * 8], "ERROR writing reftable")?;
        let mut head = [0u8; 12];
        head[..8].copy_from_slice(&offset.to_be_bytes());
        head[8..].copy_from_slice(&(clusters as u32).to_be_bytes());
        if let Some(w) = self.writer {
            w.sync_data()
                .map_err(|e| Failed(crate::error::describe_io(&e)))?;
        }
        self.write_at(48, &head, "ERROR writing reftable")?;
        if let Some(w) = self.writer {
            w.sync_data()
                .map_err(|e| Failed(crate::error::describe_io(&e)))?;
        }
        self.h.refcount_table_offset = offset;
        self.old_reftable = (offset, clusters * self.cs);
        self.h.refcount_table_clusters = clusters as u32;
        table.resize((clusters * self.cs / 8) as usize, 0);
        self.stored = Stored::new(table, self.h.cluster_bits, self.h.refcount_order);
        self.file = HostFile::open(self.file.name()).map_err(|e| Failed(e.to_string()))?;
        Ok(())
    }

    /// The rebuild branch of `qcow2_check_refcounts`: rebuild, count
    /// again, free the old structure; returns the highest cluster in use.
    pub(super) fn rebuild_and_recount(&mut self) -> Result<u64, Failed> {
        let old = self.res.clone();
        self.log.push_str("Rebuilding refcount structure\n");
        self.rebuild_structure()?;
        self.res.corruptions = 0;
        self.res.leaks = 0;
        let nb = self.rebuilt.nb.max(self.file.len().div_ceil(self.cs));
        self.rebuilt = Rebuilt::new(nb, self.h.refcount_order);
        let _ = self.calculate()?;
        let saved = std::mem::take(&mut self.res);
        let mut again = false;
        let fix = Fix {
            leaks: true,
            errors: false,
        };
        let highest = self.compare(fix, &mut again);
        if again {
            self.log
                .push_str("ERROR rebuilt refcount structure is still broken\n");
        }
        let fresh_leaks = self.res.leaks;
        self.res = ImageCheck { ..saved };
        if self.res.corruptions < old.corruptions {
            self.res.corruptions_fixed += old.corruptions - self.res.corruptions;
        }
        if self.res.leaks < old.leaks {
            self.res.leaks_fixed += old.leaks - self.res.leaks;
        }
        self.res.leaks += fresh_leaks;
        Ok(highest)
    }
}
