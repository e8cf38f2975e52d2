use clap::Args;

/// `diskforge check`: the arguments of `qemu-img check`.
#[derive(Debug, Args)]
#[command(
    about = "Check an image for consistency (qemu-img check)",
    long_about = "Check FILENAME for consistency exactly as `qemu-img check` does: for qcow2 every \
reference in the metadata is counted and compared with the stored reference counts (leaked \
clusters, counts too low, misaligned or overlapping tables, OFLAG_COPIED); vdi and vmdk block maps \
are checked as qemu checks them. Other formats have no check.\n\n\
Exit status: 0 no errors, 1 the check could not complete (also every usage error), 2 the image is \
corrupted, 3 clusters leaked, 63 the format does not support checks.\n\n\
Memory: one refcount entry (2 bytes) per cluster of the image file."
)]
pub struct CheckArgs {
    /// Image format; detected when absent
    #[arg(short = 'f', long = "format", value_name = "FMT")]
    pub format: Option<String>,

    /// Output format: human or json
    #[arg(long = "output", value_name = "OFMT", default_value = "human")]
    pub output: String,

    /// Repair: leaks (leaked clusters only) or all
    #[arg(short = 'r', long = "repair", value_name = "leaks|all")]
    pub repair: Option<String>,

    /// Quiet: print nothing on standard output
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,

    /// Open the image in shared mode (accepted; diskforge never locks)
    #[arg(short = 'U', long = "force-share")]
    pub force_share: bool,

    /// Cache mode (accepted; diskforge reads through the page cache)
    #[arg(short = 'T', long = "cache", value_name = "SRC_CACHE")]
    pub cache: Option<String>,

    /// The file name is an option string (not supported by diskforge)
    #[arg(long = "image-opts")]
    pub image_opts: bool,

    /// QEMU object definition (accepted for compatibility; diskforge has no objects)
    #[arg(long = "object", value_name = "OBJDEF")]
    pub object: Vec<String>,

    /// The image
    #[arg(value_name = "FILENAME", value_parser = clap::value_parser!(std::ffi::OsString))]
    pub filenames: Vec<std::ffi::OsString>,
}
