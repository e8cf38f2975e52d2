//! `compare`: qemu-img compare. Areas zero in both images are skipped;
//! only where either image has data is read. Exit status as qemu-img:
//! 0 identical, 1 different, 2 an image could not be opened, 3 block
//! status failed, 4 a read failed.

use crate::cli::CompareArgs;
use crate::error::{Error, Result};
use crate::image::Chain;

/// A comparison that ended with qemu-img's exit status `code` (and an
/// error line when `message` is not empty).
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

impl From<Error> for Exit {
    fn from(e: Error) -> Exit {
        Exit {
            code: 2,
            message: e.to_string(),
        }
    }
}

/// qemu-img reads at most 2 MiB at a time.
const IO_BUF_SIZE: u64 = 2 << 20;

/// qemu's simple progress printer (`    (NN.NN/100%)\r` on stdout).
struct Progress {
    enabled: bool,
    current: f32,
    last: f32,
    out: Vec<u8>,
}

impl Progress {
    fn print(&mut self, delta: f32) {
        if !self.enabled {
            return;
        }
        self.current += delta / 100.0 * 100.0;
        let c = self.current;
        if c > self.last + 2.0 || c < self.last - 2.0 || c == 0.0 || c == 100.0 {
            self.last = c;
            self.out
                .extend_from_slice(format!("    ({c:3.2}/100%)\r").as_bytes());
            let _ = super::emit(&std::mem::take(&mut self.out));
        }
    }
}

struct Side<'a> {
    name: &'a str,
    chain: Chain,
    size: u64,
}

fn status_error(name: &str, e: &Error) -> Exit {
    Exit {
        code: 3,
        message: format!("Sector allocation test failed for {name}: {e}"),
    }
}

fn read(side: &Side, offset: u64, buf: &mut [u8]) -> Result<(), Exit> {
    side.chain.read_at(offset, buf).map_err(|e| Exit {
        code: 4,
        message: format!("Error while reading offset {offset} of {}: {e}", side.name),
    })
}

/// The first 512-byte sector of `buf` (from its start) that is not all
/// zeros, as qemu's `find_nonzero`.
fn find_nonzero(buf: &[u8]) -> Option<usize> {
    buf.chunks(512)
        .position(|s| s.iter().any(|&b| b != 0))
        .map(|i| i * 512)
}

/// qemu's `compare_buffers`: where the first sector that differs starts.
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.chunks(512)
        .zip(b.chunks(512))
        .position(|(x, y)| x != y)
        .map(|i| i * 512)
}

/// Runs `diskforge compare`: prints the result and exits with
/// qemu-img's status (the process ends here unless it is 0).
pub fn run(args: &CompareArgs) -> Result<()> {
    match run_status(args) {
        Ok(()) => Ok(()),
        Err(Exit { code, message }) => {
            if !message.is_empty() {
                crate::errln!("{}: {message}", crate::cli::program_name());
            }
            std::process::exit(code)
        }
    }
}

/// [`run`] without the exit.
pub fn run_status(args: &CompareArgs) -> Result<(), Exit> {
    let as_exit = Exit::from;
    super::refuse_image_opts(args.image_opts).map_err(as_exit)?;
    let name1 = crate::qapi::bytes::string_from_os(&args.filename1);
    let name2 = crate::qapi::bytes::string_from_os(&args.filename2);
    let fmt1 = super::format_arg(args.format1.as_deref(), &name1).map_err(as_exit)?;
    let chain1 =
        crate::format::open::open_chain(&name1, fmt1, args.force_share).map_err(as_exit)?;
    let fmt2 = super::format_arg(args.format2.as_deref(), &name2).map_err(as_exit)?;
    let chain2 =
        crate::format::open::open_chain(&name2, fmt2, args.force_share).map_err(as_exit)?;
    let a = Side {
        name: &name1,
        size: chain1.virtual_size(),
        chain: chain1,
    };
    let b = Side {
        name: &name2,
        size: chain2.virtual_size(),
        chain: chain2,
    };
    let mut progress = Progress {
        enabled: args.progress && !args.quiet,
        current: 0.0,
        last: 0.0,
        out: Vec::new(),
    };
    let result = compare(&a, &b, args.strict, &mut progress);
    if progress.enabled {
        progress.out.push(b'\n');
    }
    let (code, text) = match result {
        Ok((code, text)) => (code, text),
        Err(e) => {
            super::emit(&progress.out)?;
            return Err(e);
        }
    };
    let mut out = Vec::new();
    if !args.quiet {
        out.extend_from_slice(text.as_bytes());
    }
    out.extend_from_slice(&progress.out);
    super::emit(&out)?;
    if code == 0 {
        Ok(())
    } else {
        Err(Exit {
            code,
            message: String::new(),
        })
    }
}

/// The comparison: (exit status, message for stdout).
fn compare(
    a: &Side,
    b: &Side,
    strict: bool,
    progress: &mut Progress,
) -> Result<(i32, String), Exit> {
    let total = a.size.min(b.size);
    let base = a.size.max(b.size);
    progress.print(0.0);
    if strict && a.size != b.size {
        return Ok((1, "Strict mode: Image size mismatch!\n".to_string()));
    }
    let mut buf1 = Vec::new();
    let mut buf2 = Vec::new();
    let mut offset = 0u64;
    while offset < total {
        let s1 = a
            .chain
            .block_status(offset, a.size - offset)
            .map_err(|e| status_error(a.name, &e))?;
        let s2 = b
            .chain
            .block_status(offset, b.size - offset)
            .map_err(|e| status_error(b.name, &e))?;
        let mut chunk = s1.len.min(s2.len).min(total - offset);
        if strict
            && (s1.zero, s1.data, s1.present, s1.compressed, s1.at.is_some())
                != (s2.zero, s2.data, s2.present, s2.compressed, s2.at.is_some())
        {
            return Ok((
                1,
                format!("Strict mode: Offset {offset} block status mismatch!\n"),
            ));
        }
        if s1.zero && s2.zero {
        } else if s1.present == s2.present {
            if s1.present {
                chunk = chunk.min(IO_BUF_SIZE);
                buf1.resize(chunk as usize, 0);
                buf2.resize(chunk as usize, 0);
                read(a, offset, &mut buf1)?;
                read(b, offset, &mut buf2)?;
                if let Some(i) = first_difference(&buf1, &buf2) {
                    return Ok((
                        1,
                        format!("Content mismatch at offset {}!\n", offset + i as u64),
                    ));
                }
            }
        } else {
            chunk = chunk.min(IO_BUF_SIZE);
            let side = if s1.present { a } else { b };
            buf1.resize(chunk as usize, 0);
            read(side, offset, &mut buf1)?;
            if let Some(i) = find_nonzero(&buf1) {
                return Ok((
                    1,
                    format!("Content mismatch at offset {}!\n", offset + i as u64),
                ));
            }
        }
        offset += chunk;
        progress.print(chunk as f32 / base as f32 * 100.0);
    }
    let mut text = String::new();
    if a.size != b.size {
        text.push_str("Warning: Image size mismatch!\n");
        let over = if a.size > b.size { a } else { b };
        while offset < base {
            let s = over
                .chain
                .block_status(offset, base - offset)
                .map_err(|e| status_error(over.name, &e))?;
            let mut chunk = s.len;
            if s.present && !s.zero {
                chunk = chunk.min(IO_BUF_SIZE);
                buf1.resize(chunk as usize, 0);
                read(over, offset, &mut buf1)?;
                if let Some(i) = find_nonzero(&buf1) {
                    text.push_str(&format!(
                        "Content mismatch at offset {}!\n",
                        offset + i as u64
                    ));
                    return Ok((1, text));
                }
            }
            offset += chunk;
            progress.print(chunk as f32 / base as f32 * 100.0);
        }
    }
    text.push_str("Images are identical.\n");
    Ok((0, text))
}
