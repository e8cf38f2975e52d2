//! `check`: qemu-img check. Exit status 0 clean, 1 the check could not
//! complete (and every usage error), 2 corruptions, 3 leaks, 63 the
//! format has no check.

use crate::cli::{CheckArgs, program_name};
use crate::error::Error;
use crate::format::check::{Fix, Outcome};
use crate::qapi::check::{ImageCheck, write_human, write_json_check};

/// qemu-img's usage error: the message and its hint, exit 1.
fn usage(message: &str) -> (i32, String) {
    let p = program_name();
    (
        1,
        format!("{p}: {message}\nTry '{p} check --help' for more info"),
    )
}

/// Runs `diskforge check`; the process exits with qemu-img's status.
pub fn run(args: &CheckArgs) -> crate::Result<()> {
    let (code, message) = run_status(args);
    if !message.is_empty() {
        crate::errln!("{message}");
    }
    if code == 0 {
        return Ok(());
    }
    std::process::exit(code)
}

/// [`run`] without the exit: the status and the error text for stderr.
pub fn run_status(args: &CheckArgs) -> (i32, String) {
    let fix = match args.repair.as_deref() {
        None => Fix::default(),
        Some("leaks") => Fix {
            leaks: true,
            errors: false,
        },
        Some("all") => Fix {
            leaks: true,
            errors: true,
        },
        Some(o) => return usage(&format!("--repair (-r) expects 'leaks' or 'all' not '{o}'")),
    };
    let json = match args.output.as_str() {
        "human" => false,
        "json" => true,
        o => return usage(&format!("--output expects 'human' or 'json' not '{o}'")),
    };
    if args.filenames.len() != 1 {
        return usage("Expecting one image file name");
    }
    let fail = |e: Error| (1, format!("{}: {e}", program_name()));
    if let Err(e) = super::refuse_image_opts(args.image_opts) {
        return fail(e);
    }
    let filename = crate::qapi::bytes::string_from_os(&args.filenames[0]);
    let format = match super::format_arg(args.format.as_deref(), &filename) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let mut log = String::new();
    let first = crate::format::check::check(&filename, format, fix, args.force_share, &mut log);
    let mut out = Vec::new();
    let result = match first {
        Err(e) => {
            crate::output::err(format_args!("{log}"));
            return fail(e);
        }
        Ok(Outcome::Unsupported) => {
            crate::output::err(format_args!("{log}"));
            return (
                63,
                format!(
                    "{}: This image format does not support checks",
                    program_name()
                ),
            );
        }
        Ok(Outcome::Failed(why)) => Err(why),
        Ok(Outcome::Done(c)) if c.corruptions_fixed != 0 || c.leaks_fixed != 0 => {
            if !json {
                out.extend_from_slice(
                    format!(
                        "The following inconsistencies were found and repaired:\n\n    \
                         {} leaked clusters\n    {} corruptions\n\nDouble checking the fixed image now...\n",
                        c.leaks_fixed, c.corruptions_fixed
                    )
                    .as_bytes(),
                );
            }
            match crate::format::check::check(
                &filename,
                format,
                Fix::default(),
                args.force_share,
                &mut log,
            ) {
                Ok(Outcome::Done(mut again)) => {
                    again.leaks_fixed = c.leaks_fixed;
                    again.corruptions_fixed = c.corruptions_fixed;
                    Ok(again)
                }
                Ok(Outcome::Failed(why)) => Err(why),
                Ok(Outcome::Unsupported) => Err("Operation not supported".to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
        Ok(Outcome::Done(c)) => Ok(c),
    };
    crate::output::err(format_args!("{log}"));
    let check: ImageCheck = match result {
        Ok(c) => c,
        Err(why) => {
            if !args.quiet {
                let _ = super::emit(&out);
            }
            return (1, format!("{}: Check failed: {why}", program_name()));
        }
    };
    if json {
        let _ = write_json_check(&mut out, &check);
    } else {
        let _ = write_human(&mut out, &check);
    }
    if !args.quiet && super::emit(&out).is_err() {
        return (1, String::new());
    }
    if check.check_errors != 0 {
        return (1, format!("{}: Check failed", program_name()));
    }
    (check.exit_code(), String::new())
}
