//! Writing a new vmdk image, file for file and byte for byte as qemu-img
//! does (only the random CID differs, and `--reproducible` pins it).
//!
//! Files of each subformat (NAME.vmdk given as `dir/prefix.ext`):
//! * monolithicSparse, streamOptimized: one sparse extent, descriptor
//!   embedded at sector 1.
//! * monolithicFlat: the descriptor `NAME.vmdk`, data in `prefix-flat.ext`.
//! * twoGbMaxExtentSparse / twoGbMaxExtentFlat: the descriptor and
//!   `prefix-s001.ext`... / `prefix-f001.ext`..., 2 GiB each, the last
//!   one the remainder.
//!
//! A sparse extent (qemu's layout): sector 0 header, sectors 1-20 the
//! descriptor area, sector 21 the redundant grain directory and its grain
//! tables, then the grain directory and its grain tables, grains from the
//! next 128-sector boundary. The tables are all zero (holes); only the
//! header and the two directories are written.

use super::descriptor::{
    DEFAULT_HW_VERSION, DEFAULT_TOOLS_VERSION, Descriptor, ExtentKind, ExtentLine, NO_PARENT_CID,
};
use super::header::{DESCRIPTOR_SECTORS, SECTOR_SIZE, SparseLayout};
use crate::error::{Error, Result};
use crate::format::create_ctx::{CreateContext, resolve_backing_path};
use crate::image::target::TargetFile;
use crate::name::{escape, escape_path};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// "VMDK has constant split size": 2 GiB per extent of a twoGbMaxExtent
/// image.
const SPLIT_SIZE: u64 = 0x8000_0000;

/// A vmdk subformat (`-o subformat=`), qemu's `BlockdevVmdkSubformat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subformat {
    MonolithicSparse,
    MonolithicFlat,
    TwoGbMaxExtentSparse,
    TwoGbMaxExtentFlat,
    StreamOptimized,
}

impl Subformat {
    fn from_name(name: &str) -> Option<Subformat> {
        Some(match name {
            "monolithicSparse" => Subformat::MonolithicSparse,
            "monolithicFlat" => Subformat::MonolithicFlat,
            "twoGbMaxExtentSparse" => Subformat::TwoGbMaxExtentSparse,
            "twoGbMaxExtentFlat" => Subformat::TwoGbMaxExtentFlat,
            "streamOptimized" => Subformat::StreamOptimized,
            _ => return None,
        })
    }

    /// The name, as written in `createType`.
    pub fn name(self) -> &'static str {
        match self {
            Subformat::MonolithicSparse => "monolithicSparse",
            Subformat::MonolithicFlat => "monolithicFlat",
            Subformat::TwoGbMaxExtentSparse => "twoGbMaxExtentSparse",
            Subformat::TwoGbMaxExtentFlat => "twoGbMaxExtentFlat",
            Subformat::StreamOptimized => "streamOptimized",
        }
    }

    fn flat(self) -> bool {
        matches!(
            self,
            Subformat::MonolithicFlat | Subformat::TwoGbMaxExtentFlat
        )
    }

    fn split(self) -> bool {
        matches!(
            self,
            Subformat::TwoGbMaxExtentSparse | Subformat::TwoGbMaxExtentFlat
        )
    }
}

/// A virtual adapter (`-o adapter_type=`), qemu's
/// `BlockdevVmdkAdapterType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterType {
    Ide,
    Buslogic,
    Lsilogic,
    LegacyEsx,
}

impl AdapterType {
    fn from_name(name: &str) -> Option<AdapterType> {
        Some(match name {
            "ide" => AdapterType::Ide,
            "buslogic" => AdapterType::Buslogic,
            "lsilogic" => AdapterType::Lsilogic,
            "legacyESX" => AdapterType::LegacyEsx,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            AdapterType::Ide => "ide",
            AdapterType::Buslogic => "buslogic",
            AdapterType::Lsilogic => "lsilogic",
            AdapterType::LegacyEsx => "legacyESX",
        }
    }

    /// Heads of the geometry: 16 for IDE, 255 for SCSI adapters ("the
    /// number of heads with which vmware operates" for them).
    fn heads(self) -> u32 {
        match self {
            AdapterType::Ide => 16,
            _ => 255,
        }
    }
}

/// The typed creation options of a vmdk image.
#[derive(Debug, Clone)]
pub struct VmdkOptions {
    /// Virtual size in bytes, a multiple of 512.
    pub size: u64,
    pub subformat: Subformat,
    pub adapter_type: AdapterType,
    pub hw_version: String,
    pub tools_version: String,
    pub zeroed_grain: bool,
    pub backing_file: Option<String>,
}

impl VmdkOptions {
    /// Reads and checks the `-o` options in qemu's order and with its
    /// messages.
    pub fn from_context(ctx: &CreateContext) -> Result<VmdkOptions> {
        if let Some(fmt) = ctx.backing_fmt()
            && fmt != "vmdk"
        {
            return Err(ctx.usage("backing_file must be a vmdk image"));
        }
        let invalid = |v: &str| ctx.usage(format!("invalid parameter value: {v}"));
        let adapter_type = match ctx.options.get_str("adapter_type") {
            Some(a) => AdapterType::from_name(a).ok_or_else(|| invalid(a))?,
            None => AdapterType::Ide,
        };
        let subformat = match ctx.options.get_str("subformat") {
            Some(s) => Subformat::from_name(s).ok_or_else(|| invalid(s))?,
            None => Subformat::MonolithicSparse,
        };
        let compat6 = ctx.flag("compat6", false);
        let hw_version = ctx
            .options
            .get_str("hwversion")
            .filter(|v| *v != "undefined");
        let hw_version = match (compat6, hw_version) {
            (true, Some(_)) => {
                return Err(ctx.usage("compat6 cannot be enabled with hwversion set"));
            }
            (true, None) => "6".to_string(),
            (false, Some(v)) => v.to_string(),
            (false, None) => DEFAULT_HW_VERSION.to_string(),
        };
        let tools_version = ctx
            .options
            .get_str("toolsversion")
            .unwrap_or(DEFAULT_TOOLS_VERSION)
            .to_string();
        let zeroed_grain = ctx.flag("zeroed_grain", false);
        let backing_file = ctx.backing_file().map(str::to_string);
        if subformat.flat() && backing_file.is_some() {
            return Err(ctx.usage("Flat image can't have backing file"));
        }
        if subformat.flat() && zeroed_grain {
            return Err(ctx.usage("Flat image can't enable zeroed grain"));
        }
        // qemu hands `preallocation` to the file protocol, which creates
        // each file empty: off, falloc and full change nothing.
        match ctx.options.get_str("preallocation") {
            None | Some("off" | "falloc" | "full") => {}
            Some(p @ "metadata") => {
                return Err(ctx.usage(format!("Unsupported preallocation mode: {p}")));
            }
            Some(p) => return Err(invalid(p)),
        }
        Ok(VmdkOptions {
            size: crate::format::raw::round_to_sector(ctx.size),
            subformat,
            adapter_type,
            hw_version,
            tools_version,
            zeroed_grain,
            backing_file,
        })
    }
}

/// qemu's `filename_decompose`: the directory part (up to and including
/// the last `/`, else `\`, else `:`), the base name before its last `.`,
/// and the rest (the extension with its dot).
fn decompose(filename: &str) -> (&str, &str, &str) {
    let cut = filename
        .rfind('/')
        .or_else(|| filename.rfind('\\'))
        .or_else(|| filename.rfind(':'))
        .map_or(0, |i| i + 1);
    let (dir, base) = filename.split_at(cut);
    match base.rfind('.') {
        Some(dot) => (dir, &base[..dot], &base[dot..]),
        None => (dir, base, ""),
    }
}

/// The name of extent `idx` (1-based) of a split or flat image.
fn extent_name(prefix: &str, postfix: &str, subformat: Subformat, idx: usize) -> String {
    if subformat.split() {
        let letter = if subformat.flat() { 'f' } else { 's' };
        format!("{prefix}-{letter}{idx:03}{postfix}")
    } else {
        format!("{prefix}-flat{postfix}")
    }
}

/// The CID of the new image: derived from the arguments with
/// `--reproducible`, random otherwise (as qemu's `g_random_int`).
fn new_cid(ctx: &CreateContext) -> u32 {
    if ctx.reproducible {
        let b = crate::reproducible::derived_bytes(
            ctx.size,
            &ctx.options.formatting_text(),
            "vmdk-cid",
        );
        let cid = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        // ffffffff means "no parent" in parentCID; never hand it out.
        if cid == NO_PARENT_CID { cid - 1 } else { cid }
    } else {
        random_u32()
    }
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: getrandom writes at most b.len() bytes into the buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        use std::io::Read;
        let _ = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    }
    u32::from_le_bytes(b)
}

/// Creates a vmdk image as described by `ctx`.
pub fn create(ctx: &CreateContext) -> Result<()> {
    let opts = VmdkOptions::from_context(ctx)?;
    let writer = Writer { ctx };
    writer.write(&opts, new_cid(ctx))
}

struct Writer<'a, 'b> {
    ctx: &'a CreateContext<'b>,
}

impl Writer<'_, '_> {
    fn io(&self, path: &Path, what: &str) -> impl FnOnce(std::io::Error) -> Error {
        let context = format!(
            "{}: {what} '{}'",
            escape(self.ctx.filename),
            escape_path(path)
        );
        move |e| Error::io(context, e)
    }

    fn resize(&self, file: &TargetFile, path: &Path, len: u64) -> Result<()> {
        file.set_len(len).map_err(|e| {
            Error::io(
                format!(
                    "{}: Could not resize file '{}'",
                    escape(self.ctx.filename),
                    escape_path(path)
                ),
                e,
            )
        })
    }

    fn write(&self, opts: &VmdkOptions, cid: u32) -> Result<()> {
        let filename = self.ctx.filename;
        let (dir, prefix, postfix) = decompose(filename);
        let sub = opts.subformat;
        let kind = if sub.flat() {
            ExtentKind::Flat
        } else {
            ExtentKind::Sparse
        };
        let mut extents = Vec::new();
        let image_path = self.ctx.path();
        let image = self.ctx.create_file(image_path)?;
        let monolithic_sparse = !sub.split() && !sub.flat();
        if monolithic_sparse {
            self.sparse_extent(&image, image_path, opts.size, sub, opts.zeroed_grain)?;
            extents.push(ExtentLine {
                sectors: opts.size / SECTOR_SIZE,
                kind,
                file: base_name(filename),
            });
        }
        let parent_cid = match &opts.backing_file {
            Some(b) => self.parent_cid(b)?,
            None => NO_PARENT_CID,
        };
        if !monolithic_sparse {
            let extent_size = if sub.split() { SPLIT_SIZE } else { opts.size };
            let mut created = 0u64;
            let mut idx = 1;
            while created < opts.size {
                let cur = (opts.size - created).min(extent_size);
                let name = extent_name(prefix, postfix, sub, idx);
                let path = crate::name::path_of(&format!("{dir}{name}"));
                let file = self.ctx.create_file(&path)?;
                if sub.flat() {
                    self.resize(&file, &path, cur)?;
                } else {
                    self.sparse_extent(&file, &path, cur, sub, opts.zeroed_grain)?;
                }
                extents.push(ExtentLine {
                    sectors: cur / SECTOR_SIZE,
                    kind,
                    file: base_name(&crate::name::of_path(&path)),
                });
                created += cur;
                idx += 1;
            }
        }
        let heads = opts.adapter_type.heads();
        let desc = Descriptor {
            cid,
            parent_cid,
            create_type: sub.name(),
            parent_file_name_hint: opts.backing_file.clone(),
            extents,
            hw_version: opts.hw_version.clone(),
            // qemu divides the size as a signed 64-bit number: a size
            // rounded up to 2^63 gives a negative cylinder count there.
            cylinders: (opts.size as i64) / (63 * heads as i64 * SECTOR_SIZE as i64),
            heads,
            adapter_type: opts.adapter_type.name(),
            tools_version: opts.tools_version.clone(),
        }
        .render();
        // File names carry their bytes (see crate::name): write those.
        let desc = crate::name::bytes_of(&desc);
        if monolithic_sparse {
            let area = (DESCRIPTOR_SECTORS * SECTOR_SIZE) as usize;
            if desc.len() > area {
                // qemu would write past the descriptor area over the
                // redundant grain directory; refuse instead.
                return Err(self.ctx.usage(format!(
                    "the descriptor ({} bytes) does not fit the {area}-byte descriptor area; use shorter option values",
                    desc.len()
                )));
            }
            image
                .write_all_at(&desc, SECTOR_SIZE)
                .map_err(self.io(image_path, "Could not write description to"))?;
        } else {
            image
                .write_all_at(&desc, 0)
                .map_err(self.io(image_path, "Could not write description to"))?;
        }
        Ok(())
    }

    /// Writes a sparse extent of `size` bytes: header, both grain
    /// directories, the file extended (sparsely) to the first grain.
    fn sparse_extent(
        &self,
        file: &TargetFile,
        path: &Path,
        size: u64,
        sub: Subformat,
        zeroed_grain: bool,
    ) -> Result<()> {
        let capacity = size / SECTOR_SIZE;
        let layout = SparseLayout::new(capacity);
        let header = layout.header(capacity, sub == Subformat::StreamOptimized, zeroed_grain);
        file.write_all_at(&header.to_bytes(), 0)
            .map_err(self.io(path, "Could not write header to"))?;
        self.resize(file, path, header.grain_offset * SECTOR_SIZE)?;
        let rgd = layout.directory(header.rgd_offset + layout.gd_sectors as u64);
        file.write_all_at(&rgd, header.rgd_offset * SECTOR_SIZE)
            .map_err(self.io(path, "Could not write grain directory to"))?;
        let gd = layout.directory(header.gd_offset + layout.gd_sectors as u64);
        file.write_all_at(&gd, header.gd_offset * SECTOR_SIZE)
            .map_err(self.io(path, "Could not write grain directory to"))?;
        Ok(())
    }

    /// The CID of the backing image (qemu opens it, probes its format and
    /// reads its descriptor).
    fn parent_cid(&self, backing: &str) -> Result<u32> {
        let path = resolve_backing_path(self.ctx.filename, backing);
        let format = crate::format::probe::probe(&path).map_err(|e| self.ctx.failed(e.reason()))?;
        if format != crate::format::kind::Format::Vmdk {
            return Err(self.ctx.failed(format!(
                "Invalid backing file format: {}. Must be vmdk",
                format.name()
            )));
        }
        let info = super::inspect::inspect_image(&path).map_err(|e| {
            let why = match &e {
                Error::Image(i) => i.named(),
                other => other.to_string(),
            };
            self.ctx.failed(format!(
                "Could not open backing image '{}': {why}",
                escape(backing)
            ))
        })?;
        Ok(info.cid)
    }
}

/// `g_path_get_basename`: the part after the last `/`.
fn base_name(name: &str) -> String {
    let trimmed = name.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(i) => trimmed[i + 1..].to_string(),
        None if trimmed.is_empty() && !name.is_empty() => "/".to_string(),
        None => trimmed.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decompose_like_qemu() {
        assert_eq!(decompose("a.vmdk"), ("", "a", ".vmdk"));
        assert_eq!(decompose("d.x/a"), ("d.x/", "a", ""));
        assert_eq!(decompose("d/a.b.vmdk"), ("d/", "a.b", ".vmdk"));
        assert_eq!(
            extent_name("a", ".vmdk", Subformat::TwoGbMaxExtentFlat, 12),
            "a-f012.vmdk"
        );
        assert_eq!(base_name("d/a.vmdk"), "a.vmdk");
    }
}
