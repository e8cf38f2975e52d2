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
                print_error(&format!("{}: {}", program_name(), clap_error_line(&e)));
                // qemu-img check exits 1 on a usage error: 2 and 3 are verdicts.
                let is_check = std::env::args_os().nth(1).is_some_and(|a| a == "check");
                return ExitCode::from(if is_check { 1 } else { 2 });
            }
        },
    };
    match diskforge::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            print_error(&format!("{}: {:#}", program_name(), e));
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

/// Prints an error message on stderr: its bytes, any control character
/// left in it escaped (see `diskforge::name`).
fn print_error(message: &str) {
    use std::io::Write;
    let mut line = diskforge::name::message_bytes(message);
    line.push(b'\n');
    let _ = std::io::stderr().lock().write_all(&line);
}
