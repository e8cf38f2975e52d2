//! The plain types of a qcow2 image layout: the geometry the creation
//! options fix, the preallocation mode, and the pieces of a finished
//! [`super::alloc::Layout`] (guest-to-host runs, freed refcount tables,
//! the external data file).

/// The image geometry fixed by the creation options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub cluster_bits: u32,
    /// log2 of refcount_bits.
    pub refcount_order: u32,
    pub extended_l2: bool,
}

impl Geometry {
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Refcount entries in one refcount block.
    pub fn refblock_entries(&self) -> u64 {
        (self.cluster_size() * 8) >> self.refcount_order
    }

    /// Bytes of one L2 entry (16 with extended L2: entry and bitmap).
    pub fn l2_entry_size(&self) -> u64 {
        if self.extended_l2 { 16 } else { 8 }
    }

    /// Entries in one L2 table (one cluster).
    pub fn l2_entries(&self) -> u64 {
        self.cluster_size() / self.l2_entry_size()
    }

    /// Subcluster size (1/32 of a cluster with extended L2).
    pub fn subcluster_size(&self) -> u64 {
        if self.extended_l2 {
            self.cluster_size() / 32
        } else {
            self.cluster_size()
        }
    }

    /// L1 entries for a virtual size (`size_to_l1`).
    pub fn l1_entries(&self, size: u64) -> u64 {
        size.div_ceil(self.cluster_size() * self.l2_entries())
    }
}

/// What the preallocation mode asks of the image (after qemu's rule that
/// `data_file_raw` without preallocation means metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Off,
    Metadata,
    Falloc,
    Full,
}

/// How a region at the end of a file is preallocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// `fallocate()`.
    Falloc,
    /// Written with zeros.
    Zeros,
}

/// A run of guest clusters mapped to contiguous host clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub guest: u64,
    pub host: u64,
    pub count: u64,
}

/// A refcount table that was replaced and freed: its clusters keep the
/// bytes last written to them unless something overwrites them later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleTable {
    pub cluster: u64,
    pub clusters: u64,
    pub entries: Vec<u64>,
}

/// What happens to the external data file (when there is one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataFileLayout {
    /// Final length.
    pub len: u64,
    /// Zeros qemu writes to the first bytes when the file first grows
    /// from empty (file-posix `allocate_first_block`).
    pub first_block: Option<(u64, u64)>,
    /// Zeros written by the copy-on-write of the last, partial cluster.
    pub cow_tail: Option<(u64, u64)>,
    /// A region preallocated by fallocate or zeros.
    pub fill: Option<(Fill, u64, u64)>,
}
