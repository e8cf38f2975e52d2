use super::OutputFormat;
use clap::Args;

/// `diskforge info`: the arguments of `qemu-img info`.
#[derive(Debug, Args)]
#[command(
    args_override_self = true,
    about = "Display information about a disk image (qemu-img info)",
    long_about = "Display information about the disk image FILENAME exactly as `qemu-img info` \
does: format, virtual size, allocated size, cluster size, backing file, internal snapshots, \
format-specific details and the file nodes below the image. The format is detected from the \
content unless -f gives it.\n\n\
Formats: qcow2, qcow, vmdk, vdi, vpc (alias vhd), raw."
)]
pub struct InfoArgs {
    /// Image format: raw, qcow2, qcow, vmdk, vdi, vpc (or vhd); detected when absent
    #[arg(short = 'f', long = "format", value_name = "FMT")]
    pub format: Option<String>,

    /// Output format
    #[arg(
        long = "output",
        value_name = "OFMT",
        value_enum,
        default_value = "human"
    )]
    pub output: OutputFormat,

    /// Also describe the backing images, down to the base
    #[arg(short = 'b', long = "backing-chain")]
    pub backing_chain: bool,

    /// Open the image in shared mode: read it even while another process (a VM) writes it, without taking or checking locks
    #[arg(short = 'U', long = "force-share")]
    pub force_share: bool,

    /// FILENAME is an option string (not supported by diskforge)
    #[arg(long = "image-opts")]
    pub image_opts: bool,

    /// QEMU object definition (accepted for compatibility; diskforge has no objects)
    #[arg(long = "object", value_name = "OBJDEF")]
    pub object: Vec<String>,

    /// The image file to describe
    #[arg(value_name = "FILENAME", value_parser = clap::value_parser!(std::ffi::OsString))]
    pub filename: std::ffi::OsString,
}
