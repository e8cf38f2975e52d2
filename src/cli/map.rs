use super::OutputFormat;
use clap::Args;

/// `diskforge map`: the arguments of `qemu-img map`.
#[derive(Debug, Args)]
#[command(
    about = "Dump the metadata of an image: which guest ranges hold data, zeros or fall through (qemu-img map)",
    long_about = "Dump the metadata of image FILENAME and its backing chain exactly as `qemu-img map` \
does: for each run of guest bytes, whether it is present in the image or a backing image (depth), \
reads as zeros, holds data, is compressed, and where it is stored in which host file.\n\n\
--output=human (default) prints the data extents as a table (Offset, Length, Mapped to, File) and \
fails on compressed clusters; --output=json prints every run as one JSON object per line: start, \
length, depth, present, zero, data, compressed and offset.\n\n\
Formats: qcow2, qcow, vmdk, vdi, vpc (alias vhd), raw."
)]
pub struct MapArgs {
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

    /// Start at this guest offset (bytes, or with k, M, G, T, P, E suffix)
    #[arg(short = 's', long = "start-offset", value_name = "OFFSET")]
    pub start_offset: Option<String>,

    /// Map at most this many bytes (bytes, or with a suffix)
    #[arg(short = 'l', long = "max-length", value_name = "LENGTH")]
    pub max_length: Option<String>,

    /// Open the image in shared mode (accepted; diskforge never locks)
    #[arg(short = 'U', long = "force-share")]
    pub force_share: bool,

    /// FILENAME is an option string (not supported by diskforge)
    #[arg(long = "image-opts")]
    pub image_opts: bool,

    /// QEMU object definition (accepted for compatibility; diskforge has no objects)
    #[arg(long = "object", value_name = "OBJDEF")]
    pub object: Vec<String>,

    /// The image to map
    #[arg(value_name = "FILENAME", value_parser = clap::value_parser!(std::ffi::OsString))]
    pub filename: std::ffi::OsString,
}
