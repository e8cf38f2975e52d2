//! `convert`: qemu-img convert. The sources are opened through the read
//! path, the target is created through create's code (locks, cleanup on
//! failure or signal, fsync before success) and filled by the convert
//! engine ([`crate::image::convert`]).

use crate::cli::ConvertArgs;
use crate::error::{Error, Result};
use crate::format::Format;
use crate::format::create_ctx::CreateContext;
use crate::image::Chain;
use crate::image::convert::{Settings, Source};
use crate::options::{Options, check_option_list};
use std::fs::File;

/// qemu-img's largest `-S` (16 MiB).
const MAX_SPARSE: u64 = 16 << 20;

/// qemu's simple progress printer as convert drives it: absolute
/// percentages, printed when they moved by more than 1 point, at 0 and at
/// 100 (`    (NN.NN/100%)\r` on stdout).
struct Progress {
    enabled: bool,
    last: f32,
}

impl Progress {
    fn set(&mut self, current: f32) {
        if !self.enabled {
            return;
        }
        if current > self.last + 1.0
            || current < self.last - 1.0
            || current == 0.0
            || current == 100.0
        {
            self.last = current;
            let _ = super::emit(format!("    ({current:3.2}/100%)\r").as_bytes());
        }
    }
}

/// The `-S` value in bytes, checked as qemu-img checks it.
fn sparse_arg(text: Option<&str>) -> Result<u64> {
    let Some(text) = text else {
        return Ok(4096);
    };
    match crate::size::parse_size(text) {
        Ok(v) if v % 512 == 0 && v <= MAX_SPARSE => Ok(v),
        _ => Err(Error::Failed(
            "Invalid buffer size for sparse output specified. Valid sizes are multiples of 512 \
up to 16777216. Select 0 to disable sparse detection (fully allocates output)."
                .to_string(),
        )),
    }
}

/// The `-m` value, checked as qemu-img checks it.
fn workers_arg(text: Option<&str>) -> Result<usize> {
    let Some(text) = text else {
        return Ok(8);
    };
    match text.parse::<usize>() {
        Ok(n) if (1..=16).contains(&n) => Ok(n),
        _ => Err(Error::Failed(
            "Invalid number of coroutines specified. Must be between 1 and 16.".to_string(),
        )),
    }
}

/// The output may not be a file of a source chain: qemu-img's target
/// open fails on the source's lock, before anything is written, and
/// diskforge refuses it with the same words (`-n`: those of the open).
fn refuse_source_as_target(
    output: &str,
    format: Format,
    no_create: bool,
    chains: &[Chain],
) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(crate::name::path_of(output)) else {
        return Ok(());
    };
    let id = (meta.dev(), meta.ino());
    let used = chains
        .iter()
        .flat_map(|c| c.layers.iter())
        .flat_map(|l| l.files().iter())
        .any(|f| f.identity() == id);
    if used {
        let name = crate::name::escape(output);
        let context = if no_create {
            format!("Could not open '{name}'")
        } else {
            format!("{name}: error while converting {}", format.name())
        };
        return Err(Error::Failed(format!(
            "{context}: Failed to get \"write\" lock\nIs another process using the image [{name}]?"
        )));
    }
    Ok(())
}

/// Runs `diskforge convert`.
pub fn run(args: &ConvertArgs) -> Result<()> {
    let sparse = sparse_arg(args.sparse_size.as_deref())?;
    let workers = workers_arg(args.parallel.as_deref())?;
    let names: Vec<String> = args
        .files
        .iter()
        .map(|f| crate::qapi::bytes::string_from_os(f))
        .collect();
    let Some((output, sources)) = names.split_last().filter(|(_, s)| !s.is_empty()) else {
        return Err(Error::Failed("Must specify image file name".to_string()));
    };
    if args.target_is_zero && !args.no_create {
        return Err(Error::Failed(
            "--target-is-zero requires use of -n flag".to_string(),
        ));
    }
    let out_name = args.output_format.as_deref().unwrap_or("raw");
    let out_format = Format::from_name(out_name)
        .ok_or_else(|| Error::Failed(format!("Unknown file format '{out_name}'")))?;
    for arg in &args.options {
        check_option_list(arg).map_err(|e| Error::Usage(e.to_string()))?;
    }
    let mut chains: Vec<Chain> = Vec::new();
    for name in sources {
        let fmt = super::format_arg(args.format.as_deref(), name)?;
        chains.push(crate::format::open::open_chain(
            name,
            fmt,
            args.force_share,
        )?);
    }
    refuse_source_as_target(output, out_format, args.no_create, &chains)?;
    let srcs: Vec<Source> = sources
        .iter()
        .zip(&chains)
        .map(|(name, chain)| Source { name, chain })
        .collect();
    let total: u64 = chains.iter().map(|c| c.virtual_size()).sum();
    let mut progress = Progress {
        enabled: args.progress && !args.quiet,
        last: 0.0,
    };
    let settings = Settings { sparse, workers };
    let mut fill = |file: File, zeroed: bool| -> Result<()> {
        progress.set(0.0);
        // The first pass over the metadata only serves the percentages.
        let to_copy = if progress.enabled {
            crate::image::convert::bytes_to_copy(&srcs, sparse)?
        } else {
            0
        };
        let mut writer = crate::format::writer::open(
            out_format,
            crate::format::writer::Target {
                file,
                name: output,
                zeroed,
            },
        )?;
        let mut report = |done: u64| {
            if to_copy > 0 {
                progress.set((100.0 * done as f64 / to_copy as f64) as f32);
            }
        };
        crate::image::convert::convert(&srcs, settings, writer.as_mut(), &mut report)?;
        writer.finish()?;
        progress.set(100.0);
        if progress.enabled {
            super::emit(b"\n")?;
        }
        Ok(())
    };
    if args.no_create {
        let path = crate::name::path_of(output);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| {
                Error::io(
                    format!("Could not open '{output}': Could not open '{output}'"),
                    e,
                )
            })?;
        // qemu-img checks the existing target's size (a file's length, a
        // device's size) before it writes anything.
        let target_size = match crate::image::target::device_size_at(&path) {
            Some(size) => size,
            None => file
                .metadata()
                .map_err(|e| Error::io(format!("Could not open '{output}'"), e))?
                .len(),
        };
        if target_size < total {
            return Err(Error::Failed(
                "output file is smaller than input file".to_string(),
            ));
        }
        return fill(file, args.target_is_zero);
    }
    let mut opts = Options::new(crate::format::create_options(out_format), true);
    opts.parse(&args.options)
        .map_err(|e| Error::usage_for(output, e))?;
    opts.set_number("size", total)
        .map_err(|e| Error::usage_for(output, e))?;
    let ctx = CreateContext::new(output, out_format, total, &opts, true, false);
    super::create::create_then(&ctx, || {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(ctx.path())
            .map_err(|e| Error::io(format!("Could not open '{output}'"), e))?;
        let zeroed = crate::image::target::device_size_at(ctx.path()).is_none();
        fill(file, zeroed)
    })
}
