//! Size strings, parsed exactly as qemu 10 parses them (`qemu_strtosz`).
//!
//! The grammar qemu accepts:
//! * optional leading whitespace and an optional `+`;
//! * a decimal integer (`010` is ten), or `0x`/`0X` and hex digits (no
//!   fraction and no suffix after hex);
//! * an optional fraction `.digits` (only when a suffix of `k` or larger
//!   follows; a fraction with no suffix or with `b` is rejected);
//! * an optional one-letter suffix, case-insensitive: `b` ×1, `k` `M` `G`
//!   `T` `P` `E` powers of 1024;
//! * nothing else after it.
//!
//! The fractional part is taken as a 64-bit fixed-point fraction and the
//! product is rounded half up, as qemu does (`0.9k` is 922).

use thiserror::Error;

/// Why a size string was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SizeError {
    /// The text is not a size at all (`EINVAL` in qemu).
    #[error("invalid size '{0}'")]
    Invalid(String),
    /// The text is a size but does not fit (`ERANGE` in qemu): negative, or
    /// larger than 2^64 - 1.
    #[error("size '{0}' is out of range")]
    OutOfRange(String),
}

/// Largest size an image may have (qemu's `INT64_MAX` bound in `cvtnum`).
pub const MAX_IMAGE_SIZE: u64 = i64::MAX as u64;

fn suffix_multiplier(c: u8) -> Option<u64> {
    let shift = match c.to_ascii_lowercase() {
        b'b' => 0,
        b'k' => 10,
        b'm' => 20,
        b'g' => 30,
        b't' => 40,
        b'p' => 50,
        b'e' => 60,
        _ => return None,
    };
    Some(1u64 << shift)
}

/// Parses an unsigned integer as glibc `strtoull` does after qemu's
/// `parse_uint` checks: returns the value and the index after the digits.
fn parse_digits(s: &[u8], start: usize, radix: u32) -> Option<(u128, usize)> {
    let mut i = start;
    let mut val: u128 = 0;
    let mut overflow = false;
    while i < s.len() {
        let Some(d) = (s[i] as char).to_digit(radix) else {
            break;
        };
        val = val * radix as u128 + d as u128;
        if val > u64::MAX as u128 {
            overflow = true;
            val = u64::MAX as u128 + 1;
        }
        i += 1;
    }
    if i == start {
        return None;
    }
    Some((if overflow { u64::MAX as u128 + 1 } else { val }, i))
}

/// Parses the decimal fraction starting at `s[dot]` (which is `.`) the way
/// `strtod` would, returning the fraction and the index after it.
fn parse_fraction(s: &[u8], dot: usize) -> Result<(f64, usize), ()> {
    let mut i = dot + 1;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    // strtod would also swallow an exponent: qemu rejects it then.
    if i < s.len() && (s[i] == b'e' || s[i] == b'E') {
        let mut j = i + 1;
        if j < s.len() && (s[j] == b'+' || s[j] == b'-') {
            j += 1;
        }
        if j < s.len() && s[j].is_ascii_digit() {
            return Err(());
        }
    }
    if i == dot + 1 {
        // A lone "." is no number for strtod; qemu skips the dot.
        return Ok((0.0, i));
    }
    let text = std::str::from_utf8(&s[dot..i]).map_err(|_| ())?;
    let v: f64 = format!("0{text}").parse().map_err(|_| ())?;
    Ok((v, i))
}

/// Parses `text` as qemu's `qemu_strtosz` does, with 1024 as the unit and
/// bytes as the default suffix.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let invalid = || SizeError::Invalid(text.to_string());
    let range = || SizeError::OutOfRange(text.to_string());
    let s = text.as_bytes();
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let negative = i < s.len() && s[i] == b'-';
    let mut j = i;
    if j < s.len() && (s[j] == b'+' || s[j] == b'-') {
        j += 1;
    }
    let digits = parse_digits(s, j, 10);
    let (mut val, mut end) = match digits {
        Some((v, e)) => {
            if negative {
                return Err(range());
            }
            if v > u64::MAX as u128 {
                return Err(range());
            }
            (v as u64, e)
        }
        None => (0, i),
    };
    let mut fraction_bits: u64 = 0;
    if digits.is_some() && val == 0 && end < s.len() && (s[end] == b'x' || s[end] == b'X') {
        // Hex: reparse, no fraction or suffix allowed.
        let (v, e) = parse_digits(s, end + 1, 16).ok_or_else(invalid)?;
        if v > u64::MAX as u128 {
            return Err(range());
        }
        val = v as u64;
        end = e;
        if end < s.len() && (s[end] == b'.' || suffix_multiplier(s[end]).is_some_and(|m| m > 1)) {
            return Err(invalid());
        }
    } else if (end < s.len() && s[end] == b'.')
        || (digits.is_none() && text.contains('.') && s.get(j) == Some(&b'.'))
    {
        let dot = if digits.is_none() { j } else { end };
        let (f, e) = parse_fraction(s, dot).map_err(|_| invalid())?;
        end = e;
        // `(uint64_t)(fraction * 0x1p64)`: saturating, as on x86-64.
        fraction_bits = (f * 18446744073709551616.0) as u64;
    } else if digits.is_none() {
        return Err(invalid());
    }
    let mut multiplier = 1u64;
    if end < s.len()
        && let Some(m) = suffix_multiplier(s[end])
    {
        multiplier = m;
        end += 1;
    }
    if end != s.len() {
        return Err(invalid());
    }
    if multiplier == 1 {
        if fraction_bits != 0 {
            return Err(invalid());
        }
        return Ok(val);
    }
    // 64.64 fixed point times the multiplier, rounded half up.
    let whole = val as u128 * multiplier as u128;
    let frac = fraction_bits as u128 * multiplier as u128;
    let total = whole + (frac >> 64) + ((frac as u64) >> 63) as u128;
    if total > u64::MAX as u128 {
        return Err(range());
    }
    Ok(total as u64)
}

/// Parses a positional image size as `qemu-img create` does (`cvtnum`),
/// returning qemu's exact complaint on failure.
pub fn parse_image_size(text: &str) -> Result<u64, String> {
    match parse_size(text) {
        Ok(v) if v <= MAX_IMAGE_SIZE => Ok(v),
        Ok(_) | Err(SizeError::OutOfRange(_)) => Err(format!(
            "Invalid image size specified. Must be between 0 and {MAX_IMAGE_SIZE}."
        )),
        Err(SizeError::Invalid(_)) => Err(format!("Invalid image size specified: '{text}'.")),
    }
}

/// Formats a byte count the way qemu's `size_to_str` does (`1 GiB`,
/// `1.5 MiB`, `512 B`): the unit switches once the value reaches 1000 of
/// the smaller unit, and the number is printed with C's `%0.3g`.
pub fn human_size(bytes: u64) -> String {
    const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let scaled = bytes as f64 / (1000.0 / 1024.0);
    // frexp's exponent minus one is floor(log2(scaled)).
    let exponent = if scaled == 0.0 {
        0
    } else {
        scaled.log2().floor() as i64 + 1
    };
    let i = ((exponent - 1) / 10).clamp(0, 6) as usize;
    let div = (1u64 << (i * 10)) as f64;
    format!("{} {}B", format_g(bytes as f64 / div, 3), SUFFIXES[i])
}

/// C's `%.{precision}g` for finite values.
pub fn format_g(v: f64, precision: usize) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let p = precision.max(1);
    let sci = format!("{:.*e}", p - 1, v);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let x: i32 = exp.parse().unwrap_or(0);
    if x < -4 || x >= p as i32 {
        let m = trim_fraction(mantissa);
        let sign = if x < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", x.abs())
    } else {
        let decimals = (p as i32 - 1 - x).max(0) as usize;
        trim_fraction(&format!("{v:.decimals$}")).to_string()
    }
}

fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("512", 512),
            ("1k", 1024),
            ("1K", 1024),
            ("1.5G", 1610612736),
            ("1.1k", 1126),
            ("0.9k", 922),
            ("1b", 1),
            ("0x100", 256),
            ("0X10", 16),
            ("0x10b", 267),
            ("+1G", 1 << 30),
            (" 1G", 1 << 30),
            (" +0x10", 16),
            ("010", 10),
            (".5k", 512),
            ("5.", 5),
            ("5.k", 5120),
            ("1.k", 1024),
            ("0.0000001k", 0),
            ("0.99999999999999999999k", 1024),
            ("7E", 7 << 60),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn rejected_forms() {
        for text in [
            "KB", "1KB", "1KiB", "1 G", "1k5", "1.5", "1e3", "", "abc", "0x1.8k", "1G ", "1Gb",
            "1_000", "0.5b", "1.5b", "0x", "-abc", "+-1", "1.5e3k", "1.e3k",
        ] {
            assert_eq!(
                parse_size(text),
                Err(SizeError::Invalid(text.into())),
                "{text}"
            );
        }
        for text in ["-1", " -1", "16E", "99999999999999999999"] {
            assert_eq!(
                parse_size(text),
                Err(SizeError::OutOfRange(text.into())),
                "{text}"
            );
        }
        assert!(parse_image_size("8E").is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(1 << 30), "1 GiB");
        assert_eq!(human_size(1536 << 20), "1.5 GiB");
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1073995776), "1 GiB");
        assert_eq!(human_size(104865792), "100 MiB");
        assert_eq!(human_size(123456789), "118 MiB");
        assert_eq!(human_size(1000), "0.977 KiB");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1023590), "1e+03 KiB");
    }
}
