//! `check` for vdi: qemu's `vdi_co_check` (the block map against itself
//! and the header's allocated-block count). vdi has no repair.

use crate::image::HostFile;
use crate::qapi::ImageCheck;
use byteorder::{ByteOrder, LittleEndian};
use std::fmt::Write as _;

/// A vdi entry below this value names a block in the file.
const FIRST_SPECIAL: u32 = 0xffff_fffe;

/// Checks the vdi image in `file` (header validated at open). Fails
/// with the text of an I/O error.
pub fn check(file: &HostFile, log: &mut String) -> Result<ImageCheck, String> {
    let mut head = [0u8; 0x190];
    file.read_at(0, &mut head).map_err(|e| e.to_string())?;
    let blocks = LittleEndian::read_u32(&head[0x180..]);
    let allocated_in_header = LittleEndian::read_u32(&head[0x184..]);
    let bmap_offset = u64::from(LittleEndian::read_u32(&head[0x154..]));
    // blocks_in_image was bounded at open (at most 512 Mi entries).
    let mut raw = vec![0u8; blocks as usize * 4];
    file.read_at(bmap_offset, &mut raw)
        .map_err(|e| e.to_string())?;
    let mut owner = vec![u32::MAX; blocks as usize];
    let mut res = ImageCheck::default();
    let mut allocated = 0u32;
    for (block, e) in raw.chunks_exact(4).enumerate() {
        let e = LittleEndian::read_u32(e);
        if e >= FIRST_SPECIAL {
            continue;
        }
        if e < blocks {
            allocated += 1;
            if owner[e as usize] >= FIRST_SPECIAL {
                owner[e as usize] = e;
            } else {
                let _ = writeln!(
                    log,
                    "ERROR: block index {} also used by {e}",
                    owner[e as usize]
                );
                res.corruptions += 1;
            }
        } else {
            let _ = writeln!(log, "ERROR: block index {block} too large, is {e}");
            res.corruptions += 1;
        }
    }
    if allocated != allocated_in_header {
        let _ = writeln!(
            log,
            "ERROR: allocated blocks mismatch, is {allocated}, should be {allocated_in_header}"
        );
        res.corruptions += 1;
    }
    Ok(res)
}
