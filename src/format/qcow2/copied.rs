//! `check_oflag_copied` and the writes of a repair: OFLAG_COPIED must
//! be set exactly on L1 and L2 entries whose cluster has refcount 1.

use super::check::{
    Checker, Failed, Fix, Kind, L1E_OFFSET_MASK, L2E_OFFSET_MASK, OFLAG_COPIED, read_u64s,
};
use super::header::{INCOMPAT_CORRUPT, INCOMPAT_DIRTY};
use std::fmt::Write as _;

impl Checker<'_> {
    /// `check_oflag_copied`.
    pub(super) fn oflag_copied(&mut self, fix: Fix) -> Result<(), Failed> {
        let repair = fix.errors
            || (fix.leaks
                && self.res.check_errors == 0
                && self.res.corruptions == 0
                && self.res.leaks == 0);
        let l1 = read_u64s(
            &self.file,
            self.h.l1_table_offset,
            u64::from(self.h.l1_size),
        )?;
        let word = if repair { "Repairing" } else { "ERROR" };
        for (i, &e) in l1.iter().enumerate() {
            let l2 = e & L1E_OFFSET_MASK;
            if l2 == 0 {
                continue;
            }
            let Ok(r) = self.stored.get(&self.file, l2 / self.cs) else {
                continue;
            };
            if (r == 1) != (e & OFLAG_COPIED != 0) {
                self.res.corruptions += 1;
                let _ = writeln!(
                    self.log,
                    "{word} OFLAG_COPIED L2 cluster: l1_index={i} l1_entry={e:x} refcount={r}"
                );
                if repair {
                    let new = if r == 1 {
                        e | OFLAG_COPIED
                    } else {
                        e & !OFLAG_COPIED
                    };
                    self.write(self.h.l1_table_offset + 8 * i as u64, &new.to_be_bytes())?;
                    self.res.corruptions -= 1;
                    self.res.corruptions_fixed += 1;
                }
            }
            let mut table = read_u64s(&self.file, l2, self.cs / 8)?;
            let step = if self.extl2 { 2 } else { 1 };
            let mut dirty = 0;
            for j in (0..table.len()).step_by(step) {
                let le = table[j];
                if !matches!(self.kind(le), Kind::Normal | Kind::ZeroAlloc) {
                    continue;
                }
                let r = if self.data_file {
                    1
                } else {
                    match self
                        .stored
                        .get(&self.file, (le & L2E_OFFSET_MASK) / self.cs)
                    {
                        Ok(v) => v,
                        Err(_) => continue,
                    }
                };
                if (r == 1) != (le & OFLAG_COPIED != 0) {
                    self.res.corruptions += 1;
                    let _ = writeln!(
                        self.log,
                        "{word} OFLAG_COPIED data cluster: l2_entry={le:x} refcount={r}"
                    );
                    if repair {
                        table[j] = if r == 1 {
                            le | OFLAG_COPIED
                        } else {
                            le & !OFLAG_COPIED
                        };
                        dirty += 1;
                    }
                }
            }
            if dirty > 0 {
                let bytes: Vec<u8> = table.iter().flat_map(|w| w.to_be_bytes()).collect();
                self.write(l2, &bytes)?;
                self.res.corruptions -= dirty;
                self.res.corruptions_fixed += dirty;
            }
        }
        Ok(())
    }

    fn write(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Failed> {
        use std::os::unix::fs::FileExt;
        if self.dead {
            self.res.check_errors += 1;
            return Err(Failed("Input/output error".to_string()));
        }
        let Some(w) = self.writer else {
            return Err(Failed("Permission denied".to_string()));
        };
        w.write_all_at(bytes, offset).map_err(|e| {
            self.res.check_errors += 1;
            Failed(crate::error::describe_io(&e))
        })
    }

    /// `qcow2_mark_clean` and `qcow2_mark_consistent`: the dirty and
    /// corrupt bits cleared after a successful repair.
    pub(super) fn mark_clean(&mut self) -> Result<(), Failed> {
        let bits = INCOMPAT_DIRTY | INCOMPAT_CORRUPT;
        if self.h.version >= 3 && self.h.incompatible_features & bits != 0 {
            if let Some(w) = self.writer {
                w.sync_data()
                    .map_err(|e| Failed(crate::error::describe_io(&e)))?;
            }
            let v = self.h.incompatible_features & !bits;
            self.write(72, &v.to_be_bytes())?;
        }
        Ok(())
    }

    /// `qcow2_mark_corrupt`: the corrupt bit set (v3), writes stopped.
    pub(super) fn mark_corrupt(&mut self) {
        use std::os::unix::fs::FileExt;
        if let Some(w) = self.writer
            && self.h.version >= 3
        {
            let v = self.h.incompatible_features | INCOMPAT_CORRUPT;
            let _ = w.write_all_at(&v.to_be_bytes(), 72);
            let _ = w.sync_data();
        }
        self.dead = true;
    }

    /// A small synced write of metadata in use (an L2 entry).
    pub(super) fn write_sync(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Failed> {
        self.write(offset, bytes)?;
        if let Some(w) = self.writer {
            w.sync_data()
                .map_err(|e| Failed(crate::error::describe_io(&e)))?;
        }
        Ok(())
    }
}
