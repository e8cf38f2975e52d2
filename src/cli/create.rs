use clap::Args;

/// `diskforge create`: the arguments of `qemu-img create`.
#[derive(Debug, Args)]
#[command(
    args_override_self = true,
    about = "Create a new disk image (qemu-img create)",
    long_about = "Create a new disk image FILENAME of SIZE bytes in format FMT, exactly as \
`qemu-img create` does. SIZE takes the suffixes k, M, G, T, P, E (powers of 1024) and \
decimals (1.5G); it may be omitted when a backing file gives it.\n\n\
Formats: raw (default), qcow2, qcow, vmdk, vdi, vpc (alias vhd). \
`-o help` lists the options of a format.\n\n\
Azure accepts only fixed VHDs whose virtual size is a whole number of MiB: \
`-o subformat=fixed` rounds the size to the CHS geometry (1G becomes 1073995776 bytes), \
so use `-o subformat=fixed,force_size=on` with a size in whole MiB. diskforge notes this \
on stderr only when stderr is a terminal and -q is not given; otherwise, like qemu-img, \
it prints nothing there.\n\n\
Safety: the image is locked as QEMU locks it (an image a VM or qemu-io holds is refused: \
`Failed to get \"write\" lock`); a block or character device is written in place, never \
truncated; on failure, SIGINT, SIGTERM or SIGHUP only the regular files this run created are \
removed (then diskforge dies of the signal); exit 0 means the image reached stable storage (fsync)."
)]
pub struct CreateArgs {
    /// Quiet: do not print the `Formatting ...` line or a progress bar
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,

    /// Image format: raw, qcow2, qcow, vmdk, vdi, vpc (or vhd)
    #[arg(
        short = 'f',
        long = "format",
        value_name = "FMT",
        default_value = "raw"
    )]
    pub format: String,

    /// Format options, comma-separated key=value (repeatable; `-o help` lists them)
    #[arg(short = 'o', long = "options", value_name = "OPTIONS")]
    pub options: Vec<String>,

    /// Backing file the new image is stacked on
    #[arg(short = 'b', long = "backing", value_name = "BACKING_FILE")]
    pub backing: Option<String>,

    /// Format of the backing file
    #[arg(short = 'F', long = "backing-format", value_name = "BACKING_FMT")]
    pub backing_format: Option<String>,

    /// Do not open the backing file (its size is then not read)
    #[arg(short = 'u', long = "backing-unsafe")]
    pub unsafe_backing: bool,

    /// QEMU object definition: refused (diskforge writes no encrypted images, so it needs no secret objects)
    #[arg(long = "object", value_name = "OBJDEF")]
    pub object: Vec<String>,

    /// Byte-identical output for identical arguments: no random UUIDs or
    /// CIDs, timestamps from SOURCE_DATE_EPOCH (or zero)
    #[arg(long = "reproducible")]
    pub reproducible: bool,

    /// The image file (or block device) to create (overwritten if it exists and no other process holds it)
    #[arg(value_name = "FILENAME", value_parser = clap::value_parser!(std::ffi::OsString))]
    pub filename: Option<std::ffi::OsString>,

    /// Virtual size: bytes or a number with suffix k, M, G, T, P, E
    #[arg(value_name = "SIZE")]
    pub size: Option<String>,
}
