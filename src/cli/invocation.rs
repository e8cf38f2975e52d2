//! What the command line says before any subcommand runs: the program's
//! name as invoked, the `--version` line, clap's errors in one line, and
//! the qemu-img subcommands that diskforge does not implement.

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// The qemu-img release whose interface (flags, messages, output)
/// diskforge follows.
pub const QEMU_IMG_INTERFACE_VERSION: &str = "10.0.2";

/// Every subcommand of qemu-img 10 (`qemu-img --help`, "Command syntax").
/// Those that diskforge does not define are refused by name, not as an
/// unknown word.
pub const QEMU_IMG_SUBCOMMANDS: &[&str] = &[
    "amend", "bench", "bitmap", "check", "commit", "compare", "convert", "create", "dd", "info",
    "map", "measure", "rebase", "resize", "snapshot",
];

pub use crate::output::program_name;

/// Whether the program runs as `qemu-img` (installed under that name), so
/// that it introduces itself as qemu-img does.
pub fn invoked_as_qemu_img(program: &str) -> bool {
    program == "qemu-img"
}

/// The `--version` line. As `qemu-img` it starts as qemu-img's own does,
/// `qemu-img version X.Y.Z (...)`, because callers match that pattern at
/// the start of the output (Cinder, COT); diskforge's own version is in
/// the parentheses, where qemu-img puts its package version.
pub fn version_line(program: &str) -> String {
    let own = env!("CARGO_PKG_VERSION");
    if invoked_as_qemu_img(program) {
        format!("qemu-img version {QEMU_IMG_INTERFACE_VERSION} (diskforge {own})")
    } else {
        format!("diskforge {own} (qemu-img version {QEMU_IMG_INTERFACE_VERSION} interface)")
    }
}

/// A qemu-img subcommand that this build does not implement, named by a
/// clap "unrecognized subcommand" error.
pub fn unimplemented_subcommand(err: &clap::Error, implemented: &[&str]) -> Option<String> {
    if err.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    let Some(ContextValue::String(name)) = err.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    (QEMU_IMG_SUBCOMMANDS.contains(&name.as_str()) && !implemented.contains(&name.as_str()))
        .then(|| name.clone())
}

/// The exit status of a qemu-img subcommand that is not implemented: what
/// a script reads as "the operation did not happen". 1 everywhere (for
/// `check`, qemu-img's "check not completed"), except `compare`, whose 1
/// means "the images differ" and whose 2 means "error".
pub fn unimplemented_exit_code(name: &str) -> u8 {
    if name == "compare" { 2 } else { 1 }
}

/// The one-line message for a subcommand that is not implemented.
pub fn unimplemented_message(name: &str, implemented: &[&str]) -> String {
    format!(
        "'{name}' is not implemented yet (this diskforge implements: {})",
        implemented.join(", ")
    )
}

/// Turns a clap error into one line, without clap's `error: ` prefix and
/// usage block but with all its context: the arguments it names (a
/// missing `<FILENAME>`) and its tips (`a similar subcommand exists:
/// 'create'`), joined with `; `, then `try '--help'`.
pub fn clap_error_line(err: &clap::Error) -> String {
    if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        return "missing subcommand (create, info or register); try '--help'".to_string();
    }
    collapse_clap_message(&err.render().to_string())
}

/// The text part of clap's rendered error, as one line.
fn collapse_clap_message(rendered: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for line in rendered.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("Usage:") || trimmed.starts_with("For more information") {
            break;
        }
        if trimmed.is_empty() {
            continue;
        }
        if let Some(tip) = trimmed.strip_prefix("tip: ") {
            parts.push(tip.to_string());
        } else if let Some(first) = trimmed.strip_prefix("error: ") {
            parts.push(first.to_string());
        } else if line.starts_with(char::is_whitespace) && !parts.is_empty() {
            // A continuation: the arguments listed under "the following
            // required arguments were not provided:".
            let last = parts.len() - 1;
            let sep = if parts[last].ends_with(':') || trimmed.starts_with('[') {
                " "
            } else {
                ", "
            };
            parts[last].push_str(sep);
            parts[last].push_str(trimmed);
        } else {
            parts.push(trimmed.to_string());
        }
    }
    if parts.is_empty() {
        parts.push("invalid command line".to_string());
    }
    parts.push("try '--help'".to_string());
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapse_keeps_context() {
        let cases = [
            (
                "similar subcommand",
                "error: unrecognized subcommand 'creat'\n\n  tip: a similar subcommand exists: 'create'\n\nUsage: diskforge <COMMAND>\n\nFor more information, try '--help'.\n",
                "unrecognized subcommand 'creat'; a similar subcommand exists: 'create'; try '--help'",
            ),
            (
                "missing arguments",
                "error: the following required arguments were not provided:\n  <FILENAME>\n  <SIZE>\n\nUsage: x\n",
                "the following required arguments were not provided: <FILENAME>, <SIZE>; try '--help'",
            ),
            (
                "possible values",
                "error: invalid value 'xml' for '--output <OFMT>'\n  [possible values: human, json]\n\nFor more information, try '--help'.\n",
                "invalid value 'xml' for '--output <OFMT>' [possible values: human, json]; try '--help'",
            ),
            ("empty", "", "invalid command line; try '--help'"),
        ];
        for (name, rendered, want) in cases {
            assert_eq!(collapse_clap_message(rendered), want, "{name}");
        }
    }

    #[test]
    fn version_lines() {
        let cases = [
            ("qemu-img", "qemu-img version 10.0.2 (diskforge "),
            ("diskforge", "diskforge "),
        ];
        for (program, prefix) in cases {
            assert!(version_line(program).starts_with(prefix), "{program}");
        }
    }

    #[test]
    fn unimplemented_exit_codes() {
        let cases = [("compare", 2), ("check", 1), ("convert", 1)];
        for (name, code) in cases {
            assert_eq!(unimplemented_exit_code(name), code, "{name}");
        }
    }
}
