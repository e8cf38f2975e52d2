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
                eprintln!("{line}");
                return ExitCode::from(code);
            }
        },
    };
    match diskforge::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {:#}", program, e);
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}
