//! diskforge: create and inspect virtual disk images exactly as qemu-img
//! does, and register them with image registries.
//!
//! Layout: [`format`] holds one module per image format (on-disk
//! structures, writer, reader); [`size`], [`options`], [`create`] and
//! [`progress`] are the format-neutral layer above them; [`cli`] is the
//! command line.

pub mod cleanup;
pub mod cli;
pub mod cmd;
pub mod error;
pub mod format;
pub mod image;
pub mod lock;
pub mod name;
pub mod options;
pub mod output;
pub mod progress;
pub mod qapi;
pub mod registry;
pub mod reproducible;
pub mod size;

pub use error::{Error, Result};

/// Runs one parsed command line.
pub fn run(cli: cli::Cli) -> Result<()> {
    match cli.command {
        cli::Command::Create(args) => cmd::create::run(&args),
        cli::Command::Info(args) => cmd::info::run(&args),
        cli::Command::Register(args) => registry::run(&args),
        cli::Command::Map(args) => cmd::map::run(&args),
        cli::Command::Compare(args) => cmd::compare::run(&args),
        cli::Command::Check(args) => cmd::check::run(&args),
        cli::Command::Convert(args) => cmd::convert::run(&args),
    }
}
