//! The `diskforge` binary: parses the command line and dispatches.

use clap::Parser;
use clap::error::ErrorKind;
use diskforge::cli::{Cli, clap_error_line, program_name};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            _ => {
                diskforge::errln!("{}: {}", program_name(), clap_error_line(&e));
                return ExitCode::from(2);
            }
        },
    };
    // Ctrl-C, SIGTERM or SIGHUP: remove the files this run created, then
    // die of the signal as qemu-img does.
    diskforge::cleanup::install_signal_handlers();
    match diskforge::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            diskforge::errln!("{}: {:#}", program_name(), e);
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}
