//! A small cache of metadata tables read from a host file (L2 tables,
//! grain tables, pieces of a block map): at most `capacity` tables of
//! `table_len` bytes, least recently used out first.

use super::HostFile;
use crate::error::Result;
use std::sync::{Arc, Mutex};

/// Tables keyed by their host offset.
pub struct TableCache {
    table_len: usize,
    capacity: usize,
    tables: Mutex<Vec<(u64, Arc<Vec<u8>>)>>,
}

impl TableCache {
    /// A cache of `capacity` tables of `table_len` bytes.
    pub fn new(table_len: usize, capacity: usize) -> TableCache {
        TableCache {
            table_len,
            capacity: capacity.max(1),
            tables: Mutex::new(Vec::new()),
        }
    }

    /// The table at `offset` in `file` (zeros past its end).
    pub fn get(&self, file: &HostFile, offset: u64) -> Result<Arc<Vec<u8>>> {
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = tables.iter().position(|(o, _)| *o == offset) {
            let hit = tables.remove(i);
            let table = hit.1.clone();
            tables.push(hit);
            return Ok(table);
        }
        let mut t = vec![0u8; self.table_len];
        file.read_at(offset, &mut t)?;
        let t = Arc::new(t);
        if tables.len() >= self.capacity {
            tables.remove(0);
        }
        tables.push((offset, t.clone()));
        Ok(t)
    }
}

/// A big table of fixed-size entries (a block map, a BAT) read in pages
/// through a [`TableCache`]: never loaded whole, whatever its size.
pub struct PagedTable {
    page: u64,
    offset: u64,
    entries: u64,
    entry_len: u64,
    cache: TableCache,
}

/// Bytes of one page of a [`PagedTable`].
const PAGE: u64 = 64 * 1024;

impl PagedTable {
    /// `entries` entries of `entry_len` bytes at `offset`.
    pub fn new(offset: u64, entries: u64, entry_len: u64) -> PagedTable {
        // A small table is one page of its own size.
        let page = entries
            .saturating_mul(entry_len)
            .next_multiple_of(entry_len.max(1))
            .clamp(entry_len.max(1), PAGE);
        let page = if PAGE.is_multiple_of(entry_len.max(1)) && page < PAGE {
            page
        } else {
            PAGE
        };
        PagedTable {
            page,
            offset,
            entries,
            entry_len,
            cache: TableCache::new(page as usize, 8),
        }
    }

    /// The number of entries.
    pub fn len(&self) -> u64 {
        self.entries
    }

    /// True when the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The bytes of entry `index` (`index < len()`).
    pub fn entry(&self, file: &HostFile, index: u64) -> Result<Vec<u8>> {
        let at = index * self.entry_len;
        let page = at / self.page * self.page;
        let table = self.cache.get(file, self.offset + page)?;
        let i = (at - page) as usize;
        Ok(table[i..i + self.entry_len as usize].to_vec())
    }
}
