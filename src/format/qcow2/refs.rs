//! Reference counts for `check`: the counts rebuilt from the metadata
//! (qemu's in-memory refcount array) and the counts stored on disk
//! (refcount table and blocks).
//!
//! Memory: the rebuilt array holds two bytes per cluster of the image
//! file (as qemu's array with 16-bit refcounts; larger counts go to a
//! side table). Clusters referenced past the end of the file are kept
//! in a sparse map of at most [`MAX_PAST_EOF`] entries; a file naming
//! more fails the check with ENOMEM, as qemu fails when it cannot grow
//! its array.

use crate::image::HostFile;
use std::collections::{BTreeMap, HashMap};

/// Distinct clusters past the end of the file a check will count.
pub const MAX_PAST_EOF: usize = 1 << 20;
/// Refcount blocks kept in memory while reading the stored counts.
const BLOCK_CACHE: usize = 32;
const REFT_OFFSET_MASK: u64 = 0xffff_ffff_ffff_fe00;

/// The array was full: the check fails with ENOMEM.
#[derive(Debug)]
pub struct NoMemory;

/// The rebuilt counts (qemu's `refcount_table` of `check`).
pub struct Rebuilt {
    pub max: u64,
    dense: Vec<u16>,
    wide: HashMap<u64, u64>,
    sparse: BTreeMap<u64, u64>,
    /// qemu's `nb_clusters`: the file's clusters, grown to cover every
    /// cluster referenced.
    pub nb: u64,
}

impl Rebuilt {
    pub fn new(nb: u64, refcount_order: u32) -> Rebuilt {
        let bits = 1u32 << refcount_order;
        Rebuilt {
            max: if bits >= 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            },
            dense: vec![0; nb as usize],
            wide: HashMap::new(),
            sparse: BTreeMap::new(),
            nb,
        }
    }

    pub fn get(&self, k: u64) -> u64 {
        match self.dense.get(k as usize) {
            Some(&u16::MAX) => self.wide.get(&k).copied().unwrap_or(0),
            Some(&v) => u64::from(v),
            None => self.sparse.get(&k).copied().unwrap_or(0),
        }
    }

    /// Sets cluster `k`'s count, growing `nb` past it as qemu does.
    pub fn set(&mut self, k: u64, v: u64) -> Result<(), NoMemory> {
        if let Some(d) = self.dense.get_mut(k as usize) {
            if v >= u64::from(u16::MAX) {
                *d = u16::MAX;
                self.wide.insert(k, v);
            } else {
                *d = v as u16;
            }
            return Ok(());
        }
        if !self.sparse.contains_key(&k) && self.sparse.len() >= MAX_PAST_EOF {
            return Err(NoMemory);
        }
        self.sparse.insert(k, v);
        self.nb = self.nb.max(k + 1);
        Ok(())
    }

    /// Clusters past the end of the file with a count (ascending).
    pub fn past_eof(&self) -> impl Iterator<Item = u64> + '_ {
        self.sparse.keys().copied()
    }

    pub fn dense_len(&self) -> u64 {
        self.dense.len() as u64
    }
}

/// Why a stored count could not be read (qemu's -EIO from
/// `qcow2_get_refcount`).
#[derive(Debug)]
pub enum DiskError {
    Unaligned { block: u64, index: u64 },
    Io,
}

/// The counts stored in the image.
pub struct Stored {
    pub table: Vec<u64>,
    order: u32,
    block_bits: u32,
    cluster_bits: u32,
    cache: Vec<(u64, Vec<u8>)>,
}

impl Stored {
    pub fn new(table: Vec<u64>, cluster_bits: u32, order: u32) -> Stored {
        Stored {
            table,
            order,
            block_bits: cluster_bits + 3 - order,
            cluster_bits,
            cache: Vec::new(),
        }
    }

    /// Host offset of the refcount block for cluster `k` (0: none), and
    /// the entry index in it.
    fn locate(&self, k: u64) -> Result<Option<(u64, u64)>, DiskError> {
        let ti = k >> self.block_bits;
        let Some(&e) = self.table.get(ti as usize) else {
            return Ok(None);
        };
        let block = e & REFT_OFFSET_MASK;
        if block == 0 {
            return Ok(None);
        }
        if block & ((1 << self.cluster_bits) - 1) != 0 {
            return Err(DiskError::Unaligned { block, index: ti });
        }
        Ok(Some((block, k & ((1 << self.block_bits) - 1))))
    }

    fn block(&mut self, file: &HostFile, block: u64) -> Result<&mut Vec<u8>, DiskError> {
        // Most lookups hit the block used last (sequential walks).
        if self.cache.last().is_some_and(|(o, _)| *o == block) {
            let last = self.cache.len() - 1;
            return Ok(&mut self.cache[last].1);
        }
        if let Some(i) = self.cache.iter().position(|(o, _)| *o == block) {
            let e = self.cache.remove(i);
            self.cache.push(e);
        } else {
            let mut buf = vec![0u8; 1 << self.cluster_bits];
            file.read_at(block, &mut buf).map_err(|_| DiskError::Io)?;
            if self.cache.len() >= BLOCK_CACHE {
                self.cache.remove(0);
            }
            self.cache.push((block, buf));
        }
        let last = self.cache.len() - 1;
        Ok(&mut self.cache[last].1)
    }

    /// qemu's `qcow2_get_refcount`.
    pub fn get(&mut self, file: &HostFile, k: u64) -> Result<u64, DiskError> {
        let Some((block, i)) = self.locate(k)? else {
            return Ok(0);
        };
        let order = self.order;
        let b = self.block(file, block)?;
        Ok(get_entry(b, order, i))
    }

    /// Writes cluster `k`'s stored count (its refcount block exists).
    pub fn set(
        &mut self,
        file: &HostFile,
        w: &std::fs::File,
        k: u64,
        v: u64,
    ) -> Result<(), String> {
        use std::os::unix::fs::FileExt;
        let Some((block, i)) = self
            .locate(k)
            .map_err(|_| "Input/output error".to_string())?
        else {
            return Err("Input/output error".to_string());
        };
        let order = self.order;
        let b = self
            .block(file, block)
            .map_err(|_| "Input/output error".to_string())?;
        set_entry(b, order, i, v);
        let bytes = (1usize << order).div_ceil(8);
        let at = (i as usize * (1usize << order)) / 8;
        let at = at - at % bytes;
        w.write_all_at(&b[at..at + bytes], block + at as u64)
            .map_err(|e| crate::error::describe_io(&e))
    }
}

/// Entry `i` of a refcount block of `2^order`-bit entries.
pub fn get_entry(b: &[u8], order: u32, i: u64) -> u64 {
    let i = i as usize;
    match order {
        0..=2 => {
            let bits = 1usize << order;
            let per = 8 / bits;
            u64::from((b[i / per] >> (bits * (i % per))) & ((1u8 << bits) - 1))
        }
        3 => u64::from(b[i]),
        4 => u64::from(u16::from_be_bytes([b[2 * i], b[2 * i + 1]])),
        5 => u64::from(u32::from_be_bytes(
            b[4 * i..4 * i + 4].try_into().unwrap_or([0; 4]),
        )),
        _ => u64::from_be_bytes(b[8 * i..8 * i + 8].try_into().unwrap_or([0; 8])),
    }
}

/// Sets entry `i` of a refcount block.
pub fn set_entry(b: &mut [u8], order: u32, i: u64, v: u64) {
    let i = i as usize;
    match order {
        0..=2 => {
            let bits = 1usize << order;
            let per = 8 / bits;
            let mask = ((1u8 << bits) - 1) << (bits * (i % per));
            b[i / per] = (b[i / per] & !mask) | (((v as u8) << (bits * (i % per))) & mask);
        }
        3 => b[i] = v as u8,
        4 => b[2 * i..2 * i + 2].copy_from_slice(&(v as u16).to_be_bytes()),
        5 => b[4 * i..4 * i + 4].copy_from_slice(&(v as u32).to_be_bytes()),
        _ => b[8 * i..8 * i + 8].copy_from_slice(&v.to_be_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_every_width() {
        for order in 0..=6u32 {
            let mut b = vec![0u8; 512];
            let max = if order == 6 {
                u64::MAX
            } else {
                (1u64 << (1 << order)) - 1
            };
            for i in 0..8u64 {
                set_entry(&mut b, order, i, (i + 1).min(max));
            }
            for i in 0..8u64 {
                assert_eq!(get_entry(&b, order, i), (i + 1).min(max), "order {order}");
            }
        }
    }

    #[test]
    fn rebuilt_grows_past_eof_and_keeps_wide_counts() {
        let mut r = Rebuilt::new(4, 6);
        r.set(2, 70000).unwrap();
        r.set(10, 1).unwrap();
        assert_eq!((r.get(2), r.get(10), r.nb), (70000, 1, 11));
    }
}
