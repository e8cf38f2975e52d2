//! Standard output and error that never bring diskforge down.
//!
//! `println!` panics when its reader has gone (`diskforge create ... |
//! true`, `| head -3`): diskforge would die with status 101 in the middle
//! of its work. qemu-img's printf ignores the failed write and carries on.
//! Every line diskforge prints goes through [`out`] or [`err`]
//! (via the [`outln!`](crate::outln) family of macros), which write
//! the whole text and drop any error: a closed pipe loses only the text.

use std::io::Write;

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

/// Writes `args` to standard output, ignoring a closed pipe or any other
/// write error.
pub fn out(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_fmt(args).and_then(|()| stdout.flush());
}

/// Writes `args` to standard error, ignoring any write error.
pub fn err(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// Writes `bytes` to standard output. A reader that went away (`| head`)
/// is not an error; any other failure is returned.
pub fn out_bytes(bytes: &[u8]) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// `print!` that survives a closed standard output.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::out(format_args!($($arg)*)) };
}

/// `println!` that survives a closed standard output.
#[macro_export]
macro_rules! outln {
    () => { $crate::output::out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that survives a closed standard error.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::output::err(format_args!("{}\n", format_args!($($arg)*))) };
}
