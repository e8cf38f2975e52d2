//! Decompression of compressed clusters and grains: raw deflate (qcow2,
//! qcow), zlib streams (vmdk grains) and zstd (qcow2). Output sizes are
//! the caller's buffer: nothing is allocated by a compressed length.

use flate2::{Decompress, FlushDecompress, Status};

/// Inflates a raw deflate stream (qcow2 and qcow clusters; qemu writes
/// them with a 4 KiB window, which any window decodes) into `out`, which
/// must be filled completely. Bytes after the end of the stream (sector
/// padding) are ignored.
pub fn inflate_raw(input: &[u8], out: &mut [u8]) -> bool {
    inflate(Decompress::new(false), input, out)
}

/// Inflates a zlib stream (vmdk grains) into `out`; returns the bytes
/// produced, or None on a corrupt stream.
pub fn inflate_zlib(input: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut d = Decompress::new(true);
    match d.decompress(input, out, FlushDecompress::Finish) {
        Ok(Status::StreamEnd) => Some(d.total_out() as usize),
        Ok(_) if d.total_out() as usize == out.len() => Some(out.len()),
        _ => None,
    }
}

fn inflate(mut d: Decompress, input: &[u8], out: &mut [u8]) -> bool {
    match d.decompress(input, out, FlushDecompress::Finish) {
        Ok(Status::StreamEnd) | Ok(Status::BufError) | Ok(Status::Ok) => {
            d.total_out() as usize == out.len()
        }
        Err(_) => false,
    }
}

/// Decompresses a zstd stream into `out` until it is full, as qemu does
/// (trailing padding after the frame is ignored).
pub fn unzstd(input: &[u8], out: &mut [u8]) -> bool {
    use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};
    let Ok(mut d) = Decoder::new() else {
        return false;
    };
    let mut inb = InBuffer::around(input);
    let mut outb = OutBuffer::around(out);
    while outb.pos() < outb.capacity() {
        let (last_in, last_out) = (inb.pos(), outb.pos());
        if d.run(&mut inb, &mut outb).is_err() {
            return false;
        }
        if inb.pos() <= last_in && outb.pos() <= last_out {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn codecs_round_trip() {
        let data: Vec<u8> = (0..4096u32).map(|i| (i % 7) as u8).collect();
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&data).unwrap();
        let mut packed = e.finish().unwrap();
        packed.extend_from_slice(&[0u8; 300]);
        let mut out = vec![0u8; 4096];
        assert!(inflate_raw(&packed, &mut out));
        assert_eq!(out, data);
        let z = zstd::encode_all(&data[..], 3).unwrap();
        let mut padded = z.clone();
        padded.extend_from_slice(&[0u8; 100]);
        let mut out2 = vec![0u8; 4096];
        assert!(unzstd(&padded, &mut out2));
        assert_eq!(out2, data);
        let mut short = vec![0u8; 8192];
        assert!(!unzstd(&z, &mut short));
        assert!(!inflate_raw(&[0xff; 10], &mut out));
    }
}
