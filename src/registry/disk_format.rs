//! The record's `disk_format`, guarded: detected from the file when not
//! given; when given, it must be one the registry accepts and must not
//! contradict what the file is. Declaring a qcow2 (or vmdk, vdi, vhd, qed,
//! ...) image as `raw` is the classic way to expose its backing file or
//! data file to a cloud: the hypervisor then serves the image's own
//! metadata as disk contents. `--force-disk-format` sends the value as
//! given, with a warning.

use crate::cli::register::Api;
use crate::error::{Error, Result};
use crate::format::Format;
use crate::format::probe::{Detected, detect, read_head};
use crate::image::HostFile;
use std::path::Path;

/// Glance's default `disk_formats`.
pub const GLANCE_DISK_FORMATS: [&str; 11] = [
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop",
];
/// The disk formats IMS's native create accepts.
pub const IMS_DISK_FORMATS: [&str; 4] = ["zvhd2", "vhd", "raw", "qcow2"];
/// What the file is, as far as the registry is concerned.
struct Found {
    detected: Detected,
    /// A fixed-size VHD: a raw-looking file with a VHD footer at its end.
    vhd_footer: bool,
}

impl Found {
    fn name(&self) -> &'static str {
        match self.detected {
            Detected::Known(Format::Qcow2) => "qcow2",
            Detected::Known(Format::Qcow) => "qcow (version 1)",
            Detected::Known(Format::Vmdk) => "vmdk",
            Detected::Known(Format::Vdi) => "vdi",
            Detected::Known(Format::Vpc) => "vhd (vpc)",
            Detected::Known(Format::Raw) if self.vhd_footer => "fixed vhd",
            Detected::Known(Format::Raw) => "raw",
            Detected::Unsupported(n) => n,
        }
    }

    /// The registry disk format of the file, when there is one.
    fn registry_format(&self) -> Option<&'static str> {
        Some(match self.detected {
            Detected::Known(Format::Qcow2) => "qcow2",
            Detected::Known(Format::Vmdk) => "vmdk",
            Detected::Known(Format::Vdi) => "vdi",
            Detected::Known(Format::Vpc) => "vhd",
            Detected::Known(Format::Raw) if self.vhd_footer => "vhd",
            Detected::Known(Format::Raw) => "raw",
            Detected::Unsupported("vhdx") => "vhdx",
            Detected::Unsupported("parallels") => "ploop",
            _ => return None,
        })
    }

    /// Whether `declared` may describe this file. A raw-looking file may be
    /// anything diskforge cannot tell from raw (iso, ami, ...), but not a
    /// format whose header it would have found.
    fn allows(&self, declared: &str) -> bool {
        match self.detected {
            Detected::Known(Format::Vpc) => matches!(declared, "vhd" | "zvhd2"),
            Detected::Known(Format::Raw) => match declared {
                "qcow2" | "vmdk" | "vdi" | "vhdx" | "ploop" => false,
                "vhd" => self.vhd_footer,
                _ => true,
            },
            _ => self.registry_format() == Some(declared),
        }
    }
}

fn inspect(path: &Path) -> Result<Found> {
    let f = HostFile::open_path(path)?;
    let detected = detect(&read_head(&f)?);
    let mut vhd_footer = false;
    if detected == Detected::Known(Format::Raw) && f.len() >= 512 {
        let mut footer = [0u8; 8];
        f.read_at(f.len() - 512, &mut footer)?;
        vhd_footer = &footer == b"conectix";
    }
    Ok(Found {
        detected,
        vhd_footer,
    })
}

/// The disk formats `api` accepts.
fn accepted(api: Api) -> &'static [&'static str] {
    match api {
        Api::Ims => &IMS_DISK_FORMATS,
        Api::GlanceV2 | Api::GlanceV1 => &GLANCE_DISK_FORMATS,
    }
}

/// The disk format to send for the file at `path`: `declared` once checked,
/// or the detected one. With `force`, `declared` is sent as given and the
/// second value is the warning to print.
pub fn choose(
    path: &Path,
    declared: Option<&str>,
    api: Api,
    force: bool,
) -> Result<(String, Option<String>)> {
    let found = inspect(path)?;
    let file = path.display().to_string();
    if force && declared.is_none() {
        return Err(Error::Usage(
            "--force-disk-format needs --disk-format FORMAT (the format to send)".to_string(),
        ));
    }
    let Some(declared) = declared else {
        return match found.registry_format() {
            Some(f) => Ok((f.to_string(), None)),
            None => Err(Error::usage_for(
                &file,
                format!(
                    "is a {} image, which no registry has a disk_format for; convert it \
                     (to qcow2 or raw) first",
                    found.name()
                ),
            )),
        };
    };
    if force {
        let note = (!found.allows(declared)).then(|| {
            format!(
                "warning: {file} is a {} image, registered as disk_format {declared} \
                 (--force-disk-format)",
                found.name()
            )
        });
        return Ok((declared.to_string(), note));
    }
    let list = accepted(api);
    if !list.contains(&declared) {
        let registry = if api == Api::Ims { "IMS" } else { "Glance" };
        return Err(Error::Usage(format!(
            "--disk-format '{declared}': not a disk format {registry} accepts ({}); \
             --force-disk-format sends it anyway (a registry configured with other formats)",
            list.join(", ")
        )));
    }
    if !found.allows(declared) {
        let advice = match found.registry_format() {
            Some(f) => format!("give --disk-format {f} (or leave it out)"),
            None => "convert it first".to_string(),
        };
        let why = if found.registry_format() == Some("raw") {
            format!("has no {declared} header (diskforge detects raw data)")
        } else {
            format!(
                "is a {} image; declared as {declared}, the cloud would serve its metadata \
                 as disk contents, which can expose its backing or data file",
                found.name()
            )
        };
        return Err(Error::usage_for(
            &file,
            format!("{why}; {advice}, or --force-disk-format to send --disk-format {declared}"),
        ));
    }
    Ok((declared.to_string(), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(detected: Detected, vhd_footer: bool) -> Found {
        Found {
            detected,
            vhd_footer,
        }
    }

    #[test]
    fn what_may_be_declared() {
        use Detected::{Known, Unsupported};
        let cases = [
            (Known(Format::Qcow2), false, "qcow2", true),
            (Known(Format::Qcow2), false, "raw", false),
            (Known(Format::Vmdk), false, "raw", false),
            (Known(Format::Vdi), false, "vdi", true),
            (Known(Format::Vpc), false, "vhd", true),
            (Known(Format::Vpc), false, "zvhd2", true),
            (Known(Format::Vpc), false, "raw", false),
            (Known(Format::Qcow), false, "raw", false),
            (Known(Format::Qcow), false, "qcow2", false),
            (Known(Format::Raw), false, "raw", true),
            (Known(Format::Raw), false, "iso", true),
            (Known(Format::Raw), false, "zvhd2", true),
            (Known(Format::Raw), false, "qcow2", false),
            (Known(Format::Raw), false, "vhd", false),
            (Known(Format::Raw), true, "vhd", true),
            (Known(Format::Raw), false, "vhdx", false),
            (Unsupported("vhdx"), false, "vhdx", true),
            (Unsupported("vhdx"), false, "raw", false),
            (Unsupported("parallels"), false, "ploop", true),
            (Unsupported("qed"), false, "raw", false),
            (Unsupported("luks"), false, "raw", false),
        ];
        for (d, footer, declared, want) in cases {
            let f = found(d, footer);
            assert_eq!(f.allows(declared), want, "{} as {declared}", f.name());
        }
    }
}
