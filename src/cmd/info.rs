//! `info`: what an image is, as qemu-img describes it (see
//! [`crate::qapi::info`] for the model, [`crate::format::collect`] for how
//! it is gathered).

use crate::cli::{InfoArgs, OutputFormat};
use crate::error::{Error, Result};
use crate::format::Format;
use crate::format::collect::{backing_chain, collect};
use crate::qapi::bytes;
use crate::qapi::render::{write_human, write_human_chain, write_json, write_json_chain};

/// Runs `diskforge info`.
pub fn run(args: &InfoArgs) -> Result<()> {
    if args.image_opts {
        return Err(Error::Usage(
            "--image-opts is not supported: give a plain file name".to_string(),
        ));
    }
    let format = match &args.format {
        Some(name) => Some(Format::from_name(name).ok_or_else(|| {
            Error::Usage(format!(
                "Could not open '{}': Unknown driver '{}'",
                crate::name::escape(&bytes::string_from_os(&args.filename)),
                crate::name::escape(name)
            ))
        })?),
        None => None,
    };
    let filename = bytes::string_from_os(&args.filename);
    let mut out = Vec::new();
    let written = if args.backing_chain {
        let chain = backing_chain(&filename, format, args.force_share)?;
        match args.output {
            OutputFormat::Json => write_json_chain(&mut out, &chain),
            OutputFormat::Human => write_human_chain(&mut out, &chain),
        }
    } else {
        let info = collect(&filename, format, args.force_share)?;
        match args.output {
            OutputFormat::Json => write_json(&mut out, &info),
            OutputFormat::Human => write_human(&mut out, &info),
        }
    };
    // A reader that stopped early (`| head`) is not an error.
    written
        .and_then(|()| crate::output::out_bytes(&out))
        .map_err(|e| Error::io("writing to standard output", e))
}
