//! `check` for vmdk: qemu's `vmdk_co_check`, which walks every grain
//! and stops at the first one whose table lookup fails or whose data
//! starts past the end of its extent file. qemu then reports the check
//! as failed (no counts), so a damaged vmdk exits 1, never 2.

use crate::image::{BlockDriver, ExtentKind};
use crate::qapi::ImageCheck;
use std::fmt::Write as _;

/// The grain qemu's default sparse extents use (128 sectors): the
/// granularity of the sector named in a message.
const GRAIN_SECTORS: u64 = 128;

/// Checks the opened vmdk image `d`.
pub fn check(d: &dyn BlockDriver, log: &mut String) -> Result<ImageCheck, String> {
    let size = d.virtual_size();
    let mut at = 0u64;
    while at < size {
        let e = match d.map(at, size - at) {
            Ok(e) => e,
            Err(_) => {
                let _ = writeln!(
                    log,
                    "ERROR: could not get cluster_offset for sector {}",
                    at / 512
                );
                return Err("Operation not permitted".to_string());
            }
        };
        if let ExtentKind::Data { at: host, .. } = e.kind {
            let flen = d
                .files()
                .get(usize::from(host.file))
                .map(|f| f.len())
                .unwrap_or(0);
            let inside = flen.saturating_sub(host.offset);
            if inside < e.len {
                let sector = (at + inside) / 512;
                let sector = sector - sector % GRAIN_SECTORS;
                let _ = writeln!(
                    log,
                    "ERROR: cluster offset for sector {sector} points after EOF"
                );
                return Err("Invalid argument".to_string());
            }
        }
        at += e.len.max(1);
    }
    Ok(ImageCheck::default())
}
