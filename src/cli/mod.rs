//! The command line, defined once: the same definitions feed parsing,
//! `--help` and the man page (`man/diskforge.1`).

mod check;
mod compare;
mod create;
mod info;
mod map;
pub mod register;

pub use check::CheckArgs;
pub use compare::CompareArgs;
pub use create::CreateArgs;
pub use info::InfoArgs;
pub use map::MapArgs;
pub use register::RegisterArgs;

use clap::{Parser, Subcommand, ValueEnum};

/// How `info` prints an image and `register` the final image record:
/// qemu-img's `--output=human|json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

/// The whole command line.
#[derive(Debug, Parser)]
#[command(
    name = "diskforge",
    version,
    about = "Create and inspect virtual disk images (a qemu-img work-alike) and register them with image registries",
    long_about = "diskforge creates and inspects virtual disk images (qcow2, qcow, vmdk, vdi, vpc/vhd, raw) \
exactly as qemu-img 10 does, and registers images with OpenStack Glance or Huawei Cloud IMS.\n\n\
Exit status: 0 success, 1 the operation failed, 2 usage error.",
    propagate_version = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    Create(CreateArgs),
    /// Display information about a disk image (qemu-img info)
    Info(InfoArgs),
    /// Register an image with OpenStack Glance or Huawei Cloud IMS
    Register(Box<RegisterArgs>),
    /// Dump the metadata of an image (qemu-img map)
    Map(MapArgs),
    /// Check whether two images have the same content (qemu-img compare)
    Compare(CompareArgs),
    /// Check an image for consistency (qemu-img check)
    Check(CheckArgs),
}

/// The program name as invoked (basename of argv[0]), used as the prefix
/// of every error line: `diskforge`, or `qemu-img` through a symlink.
pub fn program_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "diskforge".to_string())
}

/// Turns a clap error into one line (without clap's `error: ` prefix and
/// usage block).
pub fn clap_error_line(err: &clap::Error) -> String {
    if err.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        return "missing subcommand (create, info or register); try '--help'".to_string();
    }
    let rendered = err.render().to_string();
    let first = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid command line");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    format!("{first}; try '--help'")
}
