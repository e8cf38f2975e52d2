//! `check` for every format: qemu's per-driver consistency checks
//! (qcow2, vdi, vmdk); the other formats have none.

use super::Format;
use crate::error::Result;
use crate::image::HostFile;
use crate::qapi::ImageCheck;

pub use super::qcow2::check::Fix;

/// How a check ended.
#[derive(Debug)]
pub enum Outcome {
    /// The check ran (its counts may report damage).
    Done(ImageCheck),
    /// The format (or the repair asked for) has no check: exit 63.
    Unsupported,
    /// The check could not complete (`Check failed: WHY`).
    Failed(String),
}

/// Opens `filename` as qemu-img check opens it (its backing chain too)
/// and checks it; qemu's messages go to `log`. The image is locked as
/// qemu locks it: shared reading for a check (none with `share`, `-U`),
/// exclusive writing for a repair (which `-U` cannot have).
pub fn check(
    filename: &str,
    format: Option<Format>,
    fix: Fix,
    share: bool,
    log: &mut String,
) -> Result<Outcome> {
    let fixing = fix.leaks || fix.errors;
    let open_failed =
        |m: String| crate::error::Error::Failed(format!("Could not open '{filename}': {m}"));
    if fixing && share {
        return Err(open_failed(
            "force-share=on can only be used with read-only images".to_string(),
        ));
    }
    // A repair holds the write lock from the start; the reading opens
    // then need no lock of their own (they would conflict with it).
    let writer = if fixing {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(crate::name::path_of(filename))
            .map_err(|e| {
                open_failed(format!(
                    "Could not open '{filename}': {}",
                    crate::error::describe_io(&e)
                ))
            })?;
        crate::lock::acquire_if_supported(&file, crate::lock::Access::FORMAT_WRITE)
            .map_err(|e| open_failed(e.message(filename)))?;
        Some(file)
    } else {
        None
    };
    let chain = super::open::open_chain(filename, format, share || fixing)?;
    let Some(top) = chain.layers.first() else {
        return Ok(Outcome::Unsupported);
    };
    let fmt = Format::from_name(top.format_name()).unwrap_or(Format::Raw);
    let file: &HostFile = &top.files()[0];
    let mut done = match fmt {
        Format::Qcow2 => match super::qcow2::check::check(file, writer.as_ref(), fix, log) {
            Ok(c) => c,
            Err(e) => return Ok(Outcome::Failed(e.0)),
        },
        Format::Vdi if !fixing => match super::vdi::check::check(file, log) {
            Ok(c) => c,
            Err(e) => return Ok(Outcome::Failed(e)),
        },
        Format::Vmdk if !fixing => match super::vmdk::check::check(top.as_ref(), log) {
            Ok(c) => c,
            Err(e) => return Ok(Outcome::Failed(e)),
        },
        _ => return Ok(Outcome::Unsupported),
    };
    done.filename = filename.to_string();
    done.format = fmt.name().to_string();
    Ok(Outcome::Done(done))
}
