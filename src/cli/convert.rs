use clap::Args;

/// `diskforge convert`: the arguments of `qemu-img convert`.
#[derive(Debug, Args)]
#[command(
    args_override_self = true,
    about = "Convert one or more images into a new image (qemu-img convert)",
    long_about = "Convert SOURCE (several sources are concatenated in order) into OUTPUT, as \
`qemu-img convert` does. Areas the sources leave unallocated or zero are never read; runs of \
zeros at least SPARSE_SIZE long (aligned to it, default 4k) become holes in the output; `-S 0` \
allocates everything.\n\n\
Implemented now: output format raw (`-O raw`, the default), sources of every format diskforge \
reads (qcow2, qcow, vmdk, vdi, vpc, raw, with backing chains flattened). Not yet: other output \
formats, -c, -B, -l, snapshots.\n\n\
Safety: OUTPUT is created through the same code as `create` (locked as QEMU locks it; removed \
again on failure, SIGINT, SIGTERM or SIGHUP unless -n was given); exit 0 means it reached stable \
storage (fsync). `-p` prints qemu-img's progress text `    (NN.NN/100%)` on stdout, terminal or \
not."
)]
pub struct ConvertArgs {
    /// Source format (for every source); detected when absent
    #[arg(short = 'f', long = "format", value_name = "FMT")]
    pub format: Option<String>,

    /// Output format (implemented: raw)
    #[arg(short = 'O', long = "output-format", value_name = "OUTPUT_FMT")]
    pub output_format: Option<String>,

    /// Output format options, comma-separated key=value (repeatable)
    #[arg(short = 'o', long = "options", value_name = "OPTIONS")]
    pub options: Vec<String>,

    /// Sparse granularity: zero runs this long become holes (default 4k; 0 allocates everything)
    #[arg(short = 'S', long = "sparse-size", value_name = "SPARSE_SIZE")]
    pub sparse_size: Option<String>,

    /// Number of parallel readers (1 to 16, default 8)
    #[arg(short = 'm', long = "parallel", value_name = "N")]
    pub parallel: Option<String>,

    /// Allow out-of-order writes (accepted; diskforge writes in order, as fast)
    #[arg(short = 'W', long = "out-of-order")]
    pub out_of_order: bool,

    /// Do not create OUTPUT: write into the existing image
    #[arg(short = 'n', long = "no-create")]
    pub no_create: bool,

    /// With -n: the target reads as zeros already, zero areas are not written
    #[arg(long = "target-is-zero")]
    pub target_is_zero: bool,

    /// Show progress (qemu-img's `    (NN.NN/100%)` text on stdout)
    #[arg(short = 'p', long = "progress")]
    pub progress: bool,

    /// Quiet: print nothing (no progress)
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,

    /// Open the sources in shared mode (no lock conflict with a VM)
    #[arg(short = 'U', long = "force-share")]
    pub force_share: bool,

    /// Target cache mode (accepted; diskforge writes through the page cache and flushes at the end)
    #[arg(short = 't', long = "target-cache", value_name = "CACHE")]
    pub cache: Option<String>,

    /// Source cache mode (accepted; diskforge reads through the page cache)
    #[arg(short = 'T', long = "source-cache", value_name = "SRC_CACHE")]
    pub source_cache: Option<String>,

    /// QEMU object definition (accepted for compatibility; diskforge has no objects)
    #[arg(long = "object", value_name = "OBJDEF")]
    pub object: Vec<String>,

    /// The sources, then the output image
    #[arg(value_name = "FILE", value_parser = clap::value_parser!(std::ffi::OsString))]
    pub files: Vec<std::ffi::OsString>,
}
