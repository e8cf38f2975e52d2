//! The formats diskforge knows by name.

/// An image format diskforge can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Raw,
    Qcow2,
    Qcow,
    Vmdk,
    Vdi,
    Vpc,
}

impl Format {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [Format; 6] = [
        Format::Raw,
        Format::Qcow2,
        Format::Qcow,
        Format::Vmdk,
        Format::Vdi,
        Format::Vpc,
    ];

    /// The format named on the command line (`vhd` is an alias of `vpc`).
    pub fn from_name(name: &str) -> Option<Format> {
        Some(match name {
            "raw" => Format::Raw,
            "qcow2" => Format::Qcow2,
            "qcow" => Format::Qcow,
            "vmdk" => Format::Vmdk,
            "vdi" => Format::Vdi,
            "vpc" | "vhd" => Format::Vpc,
            _ => return None,
        })
    }

    /// qemu's name for the format.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Qcow => "qcow",
            Format::Vmdk => "vmdk",
            Format::Vdi => "vdi",
            Format::Vpc => "vpc",
        }
    }

    /// True when the format can have a backing file.
    pub fn supports_backing(self) -> bool {
        matches!(self, Format::Qcow2 | Format::Qcow | Format::Vmdk)
    }
}
