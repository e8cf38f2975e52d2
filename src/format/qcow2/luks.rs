//! The LUKS1 header inside an encrypted qcow2 image (`encrypt.format=luks`),
//! read and checked as qemu checks it before `info` shows it. Every field
//! is untrusted.

use super::header::{c_string, fail};
use crate::error::Result;
use crate::image::HostFile;
use crate::name::escape;
use crate::qapi::{LuksInfo, LuksSlot};
use byteorder::{BigEndian, ByteOrder};

/// LUKS1 header magic.
const LUKS_MAGIC: &[u8; 6] = b"LUKS\xba\xbe";
/// LUKS1 header length with its 8 key slots.
const LUKS_HEADER_SIZE: usize = 592;
/// Key slot "active" and "disabled" markers.
const LUKS_SLOT_ACTIVE: u32 = 0x00ac_71f3;
const LUKS_SLOT_DISABLED: u32 = 0x0000_dead;
/// Anti-forensic stripes of every LUKS1 key slot.
const LUKS_STRIPES: u32 = 4000;
/// Key material starts after the first 4 KiB (in sectors).
const LUKS_KEY_SLOT_OFFSET_SECTORS: u32 = 4096 / 512;

/// qemu's checks on a LUKS1 header before it uses it: strings
/// terminated, iteration counts set, key slots well-formed and neither
/// overlapping the header, the payload nor each other. Sector arithmetic
/// is done in 32 bits, as qemu does it.
fn check_luks_header(b: &[u8; LUKS_HEADER_SIZE]) -> Result<()> {
    if &b[0..6] != LUKS_MAGIC {
        return Err(fail("Volume is not in LUKS format"));
    }
    let version = BigEndian::read_u16(&b[6..]);
    if version != 1 {
        return Err(fail(format!("LUKS version {version} is not supported")));
    }
    for (field, what) in [
        (&b[8..40], "cipher name"),
        (&b[40..72], "cipher mode"),
        (&b[72..104], "hash spec"),
    ] {
        if !field.contains(&0) {
            return Err(fail(format!("LUKS header {what} is not NUL terminated")));
        }
    }
    let payload = BigEndian::read_u32(&b[104..]);
    let key_bytes = BigEndian::read_u32(&b[108..]);
    if payload < LUKS_KEY_SLOT_OFFSET_SECTORS {
        return Err(fail("LUKS payload is overlapping with the header"));
    }
    if BigEndian::read_u32(&b[164..]) == 0 {
        return Err(fail("LUKS key iteration count is zero"));
    }
    let slot = |i: usize| &b[208 + i * 48..208 + (i + 1) * 48];
    let split_sectors = |stripes: u32| key_bytes.wrapping_mul(stripes).div_ceil(LUKS_SECTOR as u32);
    for i in 0..8 {
        let s = slot(i);
        let active = BigEndian::read_u32(&s[0..]);
        let iters = BigEndian::read_u32(&s[4..]);
        let start1 = BigEndian::read_u32(&s[40..]);
        let stripes = BigEndian::read_u32(&s[44..]);
        let len1 = split_sectors(stripes);
        if stripes != LUKS_STRIPES {
            return Err(fail(format!(
                "Keyslot {i} is corrupted (stripes {} != {LUKS_STRIPES})",
                stripes as i32
            )));
        }
        if active != LUKS_SLOT_DISABLED && active != LUKS_SLOT_ACTIVE {
            return Err(fail(format!(
                "Keyslot {i} state (active/disable) is corrupted"
            )));
        }
        if active == LUKS_SLOT_ACTIVE && iters == 0 {
            return Err(fail(format!("Keyslot {i} iteration count is zero")));
        }
        if start1 < LUKS_KEY_SLOT_OFFSET_SECTORS {
            return Err(fail(format!(
                "Keyslot {i} is overlapping with the LUKS header"
            )));
        }
        if start1.wrapping_add(len1) > payload {
            return Err(fail(format!(
                "Keyslot {i} is overlapping with the encrypted payload"
            )));
        }
        for j in i + 1..8 {
            let t = slot(j);
            let start2 = BigEndian::read_u32(&t[40..]);
            let len2 = split_sectors(BigEndian::read_u32(&t[44..]));
            if start1.wrapping_add(len1) > start2 && start2.wrapping_add(len2) > start1 {
                return Err(fail(format!(
                    "Keyslots {i} and {j} are overlapping in the header"
                )));
            }
        }
    }
    Ok(())
}
const LUKS_SECTOR: u64 = 512;

/// What qemu reports of a qcow2 image's LUKS header.
pub(super) fn read_luks(f: &HostFile, offset: u64, length: u64) -> Result<LuksInfo> {
    if length < LUKS_HEADER_SIZE as u64 {
        return Err(fail("Request for data outside of extension header"));
    }
    let mut b = [0u8; LUKS_HEADER_SIZE];
    f.read_at(offset, &mut b)?;
    check_luks_header(&b)?;
    let cipher_name = c_string(&b[8..40]);
    let cipher_mode_spec = c_string(&b[40..72]);
    let hash_alg = c_string(&b[72..104]);
    let payload_offset = u64::from(BigEndian::read_u32(&b[104..])) * LUKS_SECTOR;
    let key_bytes = BigEndian::read_u32(&b[108..]);
    let master_key_iters = u64::from(BigEndian::read_u32(&b[164..]));
    let uuid = c_string(&b[168..208]);

    let (cipher_mode, ivgen) = cipher_mode_spec.split_once('-').ok_or_else(|| {
        fail(format!(
            "Unexpected cipher mode string format '{}'",
            escape(&cipher_mode_spec)
        ))
    })?;
    if !matches!(cipher_mode, "ecb" | "cbc" | "xts" | "ctr") {
        return Err(fail(format!(
            "Cipher mode '{}' not supported",
            escape(cipher_mode)
        )));
    }
    let (ivgen_alg, ivgen_hash_alg) = match ivgen.split_once(':') {
        Some((a, h)) => (a.to_string(), Some(h.to_string())),
        None => (ivgen.to_string(), None),
    };
    if !matches!(ivgen_alg.as_str(), "plain" | "plain64" | "essiv") {
        return Err(fail(format!(
            "IV generator '{}' not supported",
            escape(&ivgen_alg)
        )));
    }
    for h in std::iter::once(&hash_alg).chain(ivgen_hash_alg.as_ref()) {
        if !matches!(
            h.as_str(),
            "md5" | "sha1" | "sha224" | "sha256" | "sha384" | "sha512" | "ripemd160" | "sm3"
        ) {
            return Err(fail(format!(
                "Hash algorithm '{}' not supported",
                escape(h)
            )));
        }
    }
    let cipher_key = if cipher_mode == "xts" {
        key_bytes / 2
    } else {
        key_bytes
    };
    let valid_key = match cipher_name.as_str() {
        "aes" | "serpent" | "twofish" => matches!(cipher_key, 16 | 24 | 32),
        "cast5" | "sm4" => cipher_key == 16,
        _ => false,
    };
    if !valid_key {
        return Err(fail(format!(
            "Algorithm '{}' with key size {cipher_key} bytes not supported",
            escape(&cipher_name)
        )));
    }
    let cipher_alg = if cipher_name == "sm4" {
        "sm4".to_string()
    } else {
        format!("{cipher_name}-{}", cipher_key * 8)
    };
    let slots = b[208..]
        .chunks_exact(48)
        .map(|s| {
            let active = BigEndian::read_u32(&s[0..]) == LUKS_SLOT_ACTIVE;
            LuksSlot {
                active,
                iters: active.then(|| u64::from(BigEndian::read_u32(&s[4..]))),
                stripes: active.then(|| u64::from(BigEndian::read_u32(&s[44..]))),
                key_offset: u64::from(BigEndian::read_u32(&s[40..])) * LUKS_SECTOR,
            }
        })
        .collect();
    Ok(LuksInfo {
        cipher_alg,
        cipher_mode: cipher_mode.to_string(),
        ivgen_alg,
        ivgen_hash_alg,
        hash_alg,
        detached_header: false,
        payload_offset,
        master_key_iters,
        uuid,
        slots,
    })
}
