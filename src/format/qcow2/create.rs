//! Writing a new qcow2 image, cluster for cluster as qemu-img does.
//!
//! Cluster use of a new image (no preallocation):
//! cluster 0 header and extensions, 1 refcount table, 2 the first
//! refcount block, 3.. the L1 table (the file ends with the L1 table, not
//! padded to a cluster).

use super::header::{Extension, Header, V3_HEADER_LENGTH};
use crate::create::{CreateContext, Prealloc};
use crate::error::{Error, Result};
use std::os::unix::fs::FileExt;

/// Creates a qcow2 image.
pub fn create(ctx: &CreateContext) -> Result<()> {
    let cluster_size = ctx.options.get_number("cluster_size").unwrap_or(65536);
    if !(512..=2 << 20).contains(&cluster_size) || !cluster_size.is_power_of_two() {
        return Err(ctx.usage("Cluster size must be a power of two between 512 and 2048k"));
    }
    let _prealloc = ctx.preallocation(&[
        Prealloc::Off,
        Prealloc::Metadata,
        Prealloc::Falloc,
        Prealloc::Full,
    ])?;
    let cluster_bits = cluster_size.trailing_zeros();
    let size = crate::format::raw::round_to_sector(ctx.size);
    let l2_entries = cluster_size / 8;
    let l1_size = size.div_ceil(cluster_size * l2_entries);
    let header = Header {
        version: 3,
        cluster_bits,
        size,
        l1_size: l1_size as u32,
        l1_table_offset: 3 * cluster_size,
        refcount_table_offset: cluster_size,
        refcount_table_clusters: 1,
        refcount_order: 4,
        header_length: V3_HEADER_LENGTH,
        ..Header::default()
    };
    let mut first = header.to_bytes();
    first.extend(Extension::feature_table().to_bytes());
    first.extend([0u8; 8]);
    let path = ctx.path();
    let file = ctx.create_file(path)?;
    let w = |buf: &[u8], off: u64| {
        file.write_all_at(buf, off)
            .map_err(|e| Error::io(format!("{}: Could not write", path.display()), e))
    };
    w(&first, 0)?;
    w(&(2 * cluster_size).to_be_bytes(), cluster_size)?;
    w(&[0, 1, 0, 1, 0, 1, 0, 1], 2 * cluster_size)?;
    file.set_len(3 * cluster_size + 8 * l1_size)
        .map_err(|e| Error::io(format!("{}: Could not resize", path.display()), e))?;
    Ok(())
}
