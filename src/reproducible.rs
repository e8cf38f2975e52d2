//! `--reproducible`: values qemu-img fills at random or from the clock
//! (vmdk CID, vdi UUIDs, vpc timestamp and UUID) derived instead from the
//! creation arguments, so that the same arguments give the same bytes.

use sha2::{Digest, Sha256};

/// 32 bytes derived from the creation arguments (virtual `size` and
/// `formatting`, every option as in the `Formatting` line) and `purpose` (a label naming the
/// field, e.g. `"vmdk-cid"`), so that different fields differ.
pub fn derived_bytes(size: u64, formatting: &str, purpose: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"diskforge-reproducible\0");
    h.update(purpose.as_bytes());
    h.update(b"\0");
    h.update(size.to_be_bytes());
    h.update(formatting.as_bytes());
    h.finalize().into()
}

/// A 16-byte UUID (version 4 layout bits set) derived as [`derived_bytes`].
pub fn derived_uuid(size: u64, formatting: &str, purpose: &str) -> [u8; 16] {
    let b = derived_bytes(size, formatting, purpose);
    let mut u = [0u8; 16];
    u.copy_from_slice(&b[..16]);
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

/// The creation time for reproducible images: `SOURCE_DATE_EPOCH` (seconds
/// since 1970) when set and valid, else 0.
pub fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
