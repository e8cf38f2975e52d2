//! The `diskforge` binary: parses the command line and dispatches.

use diskforge::cli::{ParseOutcome, parse, parse_outcome, program_name};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let program = program_name();
    let cli = match parse(&program) {
        Ok(cli) => cli,
        Err(e) => match parse_outcome(&e, &program) {
            ParseOutcome::Help => {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            ParseOutcome::Version(line) => {
                // A closed stdout is not an error worth a panic here.
                let _ = writeln!(std::io::stdout().lock(), "{line}");
                return ExitCode::SUCCESS;
            }
            ParseOutcome::Error { line, code } => {
                print_error(&line);
                return ExitCode::from(code);
            }
        },
    };
    // Ctrl-C, SIGTERM or SIGHUP: remove the files this run created, then
    // die of the signal as qemu-img does.
    diskforge::cleanup::install_signal_handlers();
    match diskforge::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            print_error(&format!("{program}: {e:#}"));
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

/// Prints an error message on stderr: its bytes, any control character
/// left in it escaped (see `diskforge::name`).
fn print_error(message: &str) {
    let mut line = diskforge::name::message_bytes(message);
    line.push(b'\n');
    let _ = std::io::stderr().lock().write_all(&line);
}
