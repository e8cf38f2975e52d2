use clap::Args;

/// `diskforge compare`: the arguments of `qemu-img compare`.
#[derive(Debug, Args)]
#[command(
    about = "Check whether two images have the same guest content (qemu-img compare)",
    long_about = "Compare the guest content of FILENAME1 and FILENAME2 exactly as `qemu-img compare` \
does: areas unallocated or zero in both are skipped, only areas where either image has data are \
read. Images of different sizes compare equal when the larger one holds only zeros past the end of \
the smaller, unless -s (strict) is given.\n\n\
Exit status: 0 the images are identical, 1 they differ, 2 an error (including a usage error).\n\n\
Formats: qcow2, qcow, vmdk, vdi, vpc (alias vhd), raw."
)]
pub struct CompareArgs {
    /// Format of the first image; detected when absent
    #[arg(short = 'f', long = "a-format", value_name = "FMT")]
    pub format1: Option<String>,

    /// Format of the second image; detected when absent
    #[arg(short = 'F', long = "b-format", value_name = "FMT")]
    pub format2: Option<String>,

    /// Strict mode: fail on a size mismatch or a different allocation state
    #[arg(short = 's', long = "strict")]
    pub strict: bool,

    /// Quiet: print nothing, only the exit status says the result
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,

    /// Show progress
    #[arg(short = 'p', long = "progress")]
    pub progress: bool,

    /// Open the images in shared mode (accepted; diskforge never locks)
    #[arg(short = 'U', long = "force-share")]
    pub force_share: bool,

    /// Cache mode (accepted; diskforge reads through the page cache)
    #[arg(short = 'T', long = "source-cache", value_name = "SRC_CACHE")]
    pub cache: Option<String>,

    /// The file names are option strings (not supported by diskforge)
    #[arg(long = "image-opts")]
    pub image_opts: bool,

    /// QEMU object definition (accepted for compatibility; diskforge has no objects)
    #[arg(long = "object", value_name = "OBJDEF")]
    pub object: Vec<String>,

    /// The first image
    #[arg(value_name = "FILENAME1", value_parser = clap::value_parser!(std::ffi::OsString))]
    pub filename1: std::ffi::OsString,

    /// The second image
    #[arg(value_name = "FILENAME2", value_parser = clap::value_parser!(std::ffi::OsString))]
    pub filename2: std::ffi::OsString,
}
