//! The tables `check` reads besides L1/L2 and refcounts: the snapshot
//! table, the header extensions it needs (LUKS header, bitmaps) and the
//! bitmap directory with its bitmap tables.

use super::check::{Checker, Failed, Snapshot, read_u64s};
use super::header::{AUTOCLEAR_BITMAPS, EXT_BITMAPS, EXT_CRYPTO, Extension, V2_HEADER_LENGTH};
use byteorder::{BigEndian, ByteOrder};

const BME_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const BME_RESERVED_MASK: u64 = 0xff00_0000_0000_01fe;

impl Checker<'_> {
    /// The snapshot table as qemu reads it, each entry with the offset
    /// just past it (the table was validated when the image was opened).
    pub(super) fn snapshots(&mut self) -> Result<Vec<(Snapshot, u64)>, Failed> {
        let mut out = Vec::new();
        let mut offset = self.h.snapshots_offset;
        for _ in 0..self.h.nb_snapshots.min(65536) {
            offset = offset.next_multiple_of(8);
            let mut f = [0u8; 40];
            self.read(offset, &mut f)?;
            let l1_offset = BigEndian::read_u64(&f[0..]);
            let l1_size = BigEndian::read_u32(&f[8..]);
            let id_len = u64::from(BigEndian::read_u16(&f[12..]));
            let name_len = u64::from(BigEndian::read_u16(&f[14..]));
            let extra = u64::from(BigEndian::read_u32(&f[36..]));
            offset += 40 + extra;
            let mut id = vec![0u8; id_len as usize];
            self.read(offset, &mut id)?;
            offset += id_len;
            let mut name = vec![0u8; name_len as usize];
            self.read(offset, &mut name)?;
            offset += name_len;
            let sn = Snapshot {
                id: String::from_utf8_lossy(&id).into_owned(),
                name: String::from_utf8_lossy(&name).into_owned(),
                l1_offset,
                l1_size,
            };
            out.push((sn, offset));
        }
        Ok(out)
    }

    pub(super) fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), Failed> {
        self.file
            .read_at(offset, buf)
            .map_err(|_| Failed("Input/output error".to_string()))
    }

    /// The LUKS header (offset, length) and the bitmaps extension
    /// (count, directory size, directory offset) qemu keeps.
    #[allow(clippy::type_complexity)]
    pub(super) fn extensions(&self) -> (Option<(u64, u64)>, Option<(u32, u64, u64)>) {
        let end = if self.h.backing_file_offset != 0 {
            self.h.backing_file_offset.min(self.cs)
        } else {
            self.cs
        };
        let mut buf = vec![0u8; end as usize];
        if self.file.read_at(0, &mut buf).is_err() {
            return (None, None);
        }
        let start = if self.h.version >= 3 {
            self.h.header_length as usize
        } else {
            V2_HEADER_LENGTH as usize
        };
        let exts = Extension::parse_all(&buf, start).unwrap_or_default();
        let mut crypto = None;
        let mut bitmaps = None;
        for e in exts {
            if e.kind == EXT_CRYPTO && e.data.len() == 16 && self.h.crypt_method == 2 {
                crypto = Some((
                    BigEndian::read_u64(&e.data[0..]),
                    BigEndian::read_u64(&e.data[8..]),
                ));
            }
            if e.kind == EXT_BITMAPS
                && e.data.len() == 24
                && self.h.autoclear_features & AUTOCLEAR_BITMAPS != 0
            {
                bitmaps = Some((
                    BigEndian::read_u32(&e.data[0..]),
                    BigEndian::read_u64(&e.data[8..]),
                    BigEndian::read_u64(&e.data[16..]),
                ));
            }
        }
        (crypto, bitmaps)
    }

    /// `qcow2_check_bitmaps_refcounts`.
    pub(super) fn check_bitmaps(&mut self, n: u32, size: u64, offset: u64) -> Result<(), Failed> {
        self.inc(offset, size)?;
        // Bounded when the image was opened (qemu's 64 MiB directory limit).
        let mut dir = vec![0u8; size.min(64 << 20) as usize];
        self.read(offset, &mut dir)?;
        let mut at = 0usize;
        for _ in 0..n {
            if at + 24 > dir.len() {
                self.res.corruptions += 1;
                return Err(Failed("Invalid argument".to_string()));
            }
            let t_off = BigEndian::read_u64(&dir[at..]);
            let t_size = u64::from(BigEndian::read_u32(&dir[at + 8..]));
            let name = usize::from(BigEndian::read_u16(&dir[at + 18..]));
            let extra = BigEndian::read_u32(&dir[at + 20..]) as usize;
            at = (at + 24 + extra + name).next_multiple_of(8);
            self.inc(t_off, t_size * 8)?;
            for e in read_u64s(&self.file, t_off, t_size)? {
                let off = e & BME_OFFSET_MASK;
                if e & BME_RESERVED_MASK != 0
                    || (off != 0 && (e & 1 != 0 || self.offset_in_cluster(off) != 0))
                {
                    self.res.corruptions += 1;
                    continue;
                }
                if off != 0 {
                    self.inc(off, self.cs)?;
                }
            }
        }
        Ok(())
    }
}
