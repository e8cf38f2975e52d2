//! `map`: qemu-img map's walk over the block status of a chain.

use crate::cli::{MapArgs, OutputFormat};
use crate::error::{Error, Result};
use crate::image::Chain;
use crate::qapi::map::{HUMAN_UNMAPPABLE, MapEntry, write_entry, write_human_header};

/// qemu-img probes at most 1 GiB at a time.
const PROBE: u64 = 1 << 30;

/// Runs `diskforge map`.
pub fn run(args: &MapArgs) -> Result<()> {
    super::refuse_image_opts(args.image_opts)?;
    let filename = crate::qapi::bytes::string_from_os(&args.filename);
    let start = match &args.start_offset {
        Some(t) => super::number_arg("start offset", t)?,
        None => 0,
    };
    let max_length = match &args.max_length {
        Some(t) => Some(super::number_arg("max length", t)?),
        None => None,
    };
    let format = super::format_arg(args.format.as_deref(), &filename)?;
    let chain = crate::format::open::open_chain(&filename, format, args.force_share)?;
    let mut out = Vec::new();
    let result = write_map(
        &mut out,
        &chain,
        args.output == OutputFormat::Json,
        start,
        max_length,
    );
    super::emit(&out)?;
    result
}

/// The map of `chain` from `start` (at most `max_length` bytes), as
/// qemu-img prints it.
pub fn write_map(
    out: &mut Vec<u8>,
    chain: &Chain,
    json: bool,
    start: u64,
    max_length: Option<u64>,
) -> Result<()> {
    let io = |e: std::io::Error| Error::io("writing the map", e);
    if json {
        out.push(b'[');
    } else {
        write_human_header(out).map_err(io)?;
    }
    let mut length = chain.virtual_size();
    if let Some(m) = max_length {
        length = length.min(start.saturating_add(m));
    }
    let mut curr = MapEntry {
        start,
        ..MapEntry::default()
    };
    while curr.start + curr.length < length {
        let offset = curr.start + curr.length;
        let n = (length - offset).min(PROBE);
        let s = chain.block_status(offset, n)?;
        let mut next = MapEntry {
            start: offset,
            length: s.len,
            depth: s.depth as u64,
            present: s.present,
            zero: s.zero,
            data: s.data,
            compressed: s.compressed,
            offset: s.at.map(|a| a.offset),
            filename: s.at.map(|a| chain.file_name(s.depth, a).to_string()),
        };
        if curr.mergeable(&next) {
            curr.length += next.length;
            continue;
        }
        if curr.length > 0 && !write_entry(out, json, &curr, Some(&mut next)).map_err(io)? {
            return Err(Error::Failed(HUMAN_UNMAPPABLE.to_string()));
        }
        curr = next;
    }
    if !write_entry(out, json, &curr, None).map_err(io)? {
        return Err(Error::Failed(HUMAN_UNMAPPABLE.to_string()));
    }
    if json {
        out.extend_from_slice(b"]\n");
    }
    Ok(())
}
