//! The command line, defined once: the same definitions feed parsing,
//! `--help` and the man page (`man/diskforge.1`).

mod check;
mod compare;
mod convert;
mod create;
mod info;
mod invocation;
pub mod manual;
mod map;
pub mod register;

pub use check::CheckArgs;
pub use compare::CompareArgs;
pub use convert::ConvertArgs;
pub use create::CreateArgs;
pub use info::InfoArgs;
pub use invocation::{
    QEMU_IMG_INTERFACE_VERSION, QEMU_IMG_SUBCOMMANDS, clap_error_line, invoked_as_qemu_img,
    program_name, version_line,
};
pub use map::MapArgs;
pub use register::RegisterArgs;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

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
Exit status: 0 success, 1 the operation failed, 2 usage error. A qemu-img subcommand that \
diskforge does not implement (check, resize, ...) says so and exits 1 (compare: 2).",
    propagate_version = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. Their help text is on the argument structs: a doc
/// comment on a variant here would replace it (about and long about).
#[derive(Debug, Subcommand)]
pub enum Command {
    Create(CreateArgs),
    Info(InfoArgs),
    Register(Box<RegisterArgs>),
    /// Dump the metadata of an image (qemu-img map)
    Map(MapArgs),
    /// Check whether two images have the same content (qemu-img compare)
    Compare(CompareArgs),
    /// Check an image for consistency (qemu-img check)
    Check(CheckArgs),
    Convert(Box<ConvertArgs>),
}

/// The clap command as `program` (basename of argv[0]) presents it: as
/// `qemu-img`, `--help` starts with qemu-img's version line, which callers
/// match at the start of its output.
pub fn command_for(program: &str) -> clap::Command {
    let cmd = Cli::command().bin_name(program.to_string());
    if invoked_as_qemu_img(program) {
        cmd.before_help(version_line(program))
    } else {
        cmd
    }
}

/// Parses the process's arguments.
pub fn parse(program: &str) -> Result<Cli, clap::Error> {
    let mut matches = command_for(program).try_get_matches()?;
    Cli::from_arg_matches_mut(&mut matches)
}

/// What to do with a command line that did not parse.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseOutcome {
    /// `--help`: clap prints it (stdout), exit 0.
    Help,
    /// `--version`: print this line on stdout, exit 0.
    Version(String),
    /// Print this line (already prefixed with the program name) on
    /// stderr and exit with this status.
    Error { line: String, code: u8 },
}

/// Sorts a clap error into help, version or a one-line error: usage
/// errors exit 2; a qemu-img subcommand that diskforge lacks is named as
/// such and exits as a failed operation (see
/// [`invocation::unimplemented_exit_code`]).
pub fn parse_outcome(err: &clap::Error, program: &str) -> ParseOutcome {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp => ParseOutcome::Help,
        ErrorKind::DisplayVersion => ParseOutcome::Version(version_line(program)),
        _ => {
            let cmd = Cli::command();
            let implemented: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
            if let Some(name) = invocation::unimplemented_subcommand(err, &implemented) {
                let line = invocation::unimplemented_message(&name, &implemented);
                return ParseOutcome::Error {
                    line: format!("{program}: {line}"),
                    code: invocation::unimplemented_exit_code(&name),
                };
            }
            // qemu-img check exits 1 on a usage error: its 2 and 3 are
            // verdicts that callers act on.
            let is_check = std::env::args_os().nth(1).is_some_and(|a| a == "check");
            ParseOutcome::Error {
                line: format!("{program}: {}", clap_error_line(err)),
                code: if is_check { 1 } else { 2 },
            }
        }
    }
}
