//! Unit tests of the qcow2 cluster allocator replay.

use super::*;

fn geo(bits: u32) -> Geometry {
    Geometry {
        cluster_bits: bits,
        refcount_order: 4,
        extended_l2: false,
    }
}

#[test]
fn default_layout() {
    let l = Layout::build(geo(16), 1 << 30, Mode::Off, false).unwrap();
    assert_eq!(l.l1_cluster, 3);
    assert_eq!(l.l1_size, 2);
    assert_eq!(l.file_len, 3 * 65536 + 16);
}

#[test]
fn metadata_interleaves() {
    let l = Layout::build(geo(16), 1 << 30, Mode::Metadata, false).unwrap();
    assert_eq!(l.l2[0], 4);
    assert_eq!(l.host_of(0), Some(5));
}

#[test]
fn falloc_reuses_old_table() {
    let l = Layout::build(geo(16), 1 << 30, Mode::Falloc, false).unwrap();
    assert_eq!(l.reftable_cluster, 4);
    assert_eq!(l.l2[0], 1);
    assert_eq!(l.host_of(0), Some(5));
    assert_eq!(l.file_len, 1074135040);
}
