//! `-o key=value,...` creation options, parsed the way qemu's QemuOpts
//! parses them for `qemu-img create`.
//!
//! * Several `-o` arguments are joined with `,` before parsing.
//! * `,,` inside a value stands for one comma.
//! * A bare `key` means `key=on`; a bare `nokey` means `key=off`.
//! * A key given twice keeps the last value.
//! * Values are checked against the option's type when parsed (size,
//!   number, bool, string), with qemu's messages.
//! * The `Formatting ...` line lists, in the format's own option order,
//!   every option that is set or has a default.

use crate::size::{SizeError, parse_size};
use thiserror::Error;

/// The type of a creation option, as qemu declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptType {
    Str,
    Bool,
    Number,
    Size,
}

impl OptType {
    fn help_name(self) -> &'static str {
        match self {
            OptType::Str => "str",
            OptType::Bool => "bool (on/off)",
            OptType::Number => "num",
            OptType::Size => "size",
        }
    }
}

/// One creation option a format (or the file protocol below it) accepts.
#[derive(Debug, Clone, Copy)]
pub struct OptDesc {
    pub name: &'static str,
    pub ty: OptType,
    pub help: &'static str,
    /// Printed in the `Formatting` line when the option is not given.
    pub default: Option<&'static str>,
}

impl OptDesc {
    pub const fn new(name: &'static str, ty: OptType, help: &'static str) -> Self {
        OptDesc {
            name,
            ty,
            help,
            default: None,
        }
    }

    pub const fn with_default(mut self, default: &'static str) -> Self {
        self.default = Some(default);
        self
    }
}

/// Options of the `file` protocol, appended to every format's list when
/// an image file name is known (qemu merges the protocol's create options).
pub const FILE_PROTOCOL_OPTIONS: &[OptDesc] = &[
    OptDesc::new(
        "nocow",
        OptType::Bool,
        "Turn off copy-on-write (valid only on btrfs)",
    ),
    OptDesc::new(
        "preallocation",
        OptType::Str,
        "Preallocation mode (allowed values: off, falloc, full)",
    ),
    OptDesc::new(
        "extent_size_hint",
        OptType::Size,
        "Extent size hint for the image file, 0 to disable",
    ),
];

/// The `size` option every format has.
pub const SIZE_OPTION: OptDesc = OptDesc::new("size", OptType::Size, "Virtual disk size");

/// Why an option list was refused. Every variant names the option.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OptionError {
    #[error("Invalid option list: {0}")]
    InvalidList(String),
    #[error("Invalid parameter '{0}'")]
    UnknownOption(String),
    #[error("Parameter '{0}' expects 'on' or 'off'")]
    ExpectsBool(String),
    #[error("Parameter '{0}' expects a number")]
    ExpectsNumber(String),
    #[error(
        "Parameter '{0}' expects a non-negative number below 2^64 (optional suffix k, M, G, T, P or E)"
    )]
    ExpectsSize(String),
    #[error("Value '{value}' is out of range for parameter '{name}'")]
    OutOfRange { name: String, value: String },
}

/// A parsed value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Str,
    Bool(bool),
    Number(u64),
}

#[derive(Debug, Clone)]
struct Setting {
    name: String,
    text: String,
    value: Value,
}

/// The creation options of one `create` call: the list of options the
/// format accepts, in its print order, and the values given.
#[derive(Debug, Clone)]
pub struct Options {
    descs: Vec<OptDesc>,
    settings: Vec<Setting>,
}

/// True when a `-o` argument asks for the option list (`help` or `?`).
pub fn is_help_request(option_args: &[String]) -> bool {
    option_args
        .iter()
        .flat_map(|a| split_items(a))
        .any(|item| item == "help" || item == "?")
}

/// Checks one `-o` argument as qemu-img does before joining them: not
/// empty, no leading comma, no unpaired trailing comma.
pub fn check_option_list(arg: &str) -> Result<(), OptionError> {
    let trailing = arg.len() - arg.trim_end_matches(',').len();
    if arg.is_empty() || arg.starts_with(',') || trailing % 2 == 1 {
        return Err(OptionError::InvalidList(arg.to_string()));
    }
    Ok(())
}

/// Splits an option string on single commas; `,,` is a literal comma.
fn split_items(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                current.push(',');
            } else {
                items.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() || !items.is_empty() {
        items.push(current);
    }
    items
}

fn parse_bool(name: &str, text: &str) -> Result<bool, OptionError> {
    match text {
        "on" | "yes" | "true" | "y" => Ok(true),
        "off" | "no" | "false" | "n" => Ok(false),
        _ => Err(OptionError::ExpectsBool(name.to_string())),
    }
}

/// `qemu_strtou64(text, NULL, 0)`: decimal, `0x` hex or `0` octal, with
/// a leading `-` wrapping around as strtoull does.
fn parse_number(name: &str, text: &str) -> Result<u64, OptionError> {
    let err = || OptionError::ExpectsNumber(name.to_string());
    let t = text.trim_start();
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, h)
    } else if t.len() > 1 && t.starts_with('0') {
        (8, &t[1..])
    } else {
        (10, t)
    };
    let v = u64::from_str_radix(digits, radix).map_err(|_| err())?;
    Ok(if negative { v.wrapping_neg() } else { v })
}

impl Options {
    /// An empty option set over `descs` (the format's list, then the
    /// protocol's, duplicates dropped).
    pub fn new(format_descs: &[OptDesc], with_protocol: bool) -> Self {
        let mut descs: Vec<OptDesc> = Vec::new();
        let protocol: &[OptDesc] = if with_protocol {
            FILE_PROTOCOL_OPTIONS
        } else {
            &[]
        };
        for d in format_descs.iter().chain(protocol) {
            if !descs.iter().any(|e| e.name == d.name) {
                descs.push(*d);
            }
        }
        Options {
            descs,
            settings: Vec::new(),
        }
    }

    /// Parses the `-o` arguments (already checked with
    /// [`check_option_list`]) into this set.
    pub fn parse(&mut self, option_args: &[String]) -> Result<(), OptionError> {
        let joined = option_args.join(",");
        for item in split_items(&joined) {
            let (name, text) = match item.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => match item.strip_prefix("no") {
                    Some(rest) => (rest.to_string(), "off".to_string()),
                    None => (item.clone(), "on".to_string()),
                },
            };
            self.set(&name, &text)?;
        }
        Ok(())
    }

    fn desc(&self, name: &str) -> Option<&OptDesc> {
        self.descs.iter().find(|d| d.name == name)
    }

    /// Sets one option from its text, checking the type.
    pub fn set(&mut self, name: &str, text: &str) -> Result<(), OptionError> {
        let desc = self
            .desc(name)
            .ok_or_else(|| OptionError::UnknownOption(name.to_string()))?;
        let value = match desc.ty {
            OptType::Str => Value::Str,
            OptType::Bool => Value::Bool(parse_bool(name, text)?),
            OptType::Number => Value::Number(parse_number(name, text)?),
            OptType::Size => Value::Number(parse_size(text).map_err(|e| match e {
                SizeError::OutOfRange(_) => OptionError::OutOfRange {
                    name: name.to_string(),
                    value: text.to_string(),
                },
                SizeError::Invalid(_) => OptionError::ExpectsSize(name.to_string()),
            })?),
        };
        self.settings.retain(|s| s.name != name);
        self.settings.push(Setting {
            name: name.to_string(),
            text: text.to_string(),
            value,
        });
        Ok(())
    }

    /// Sets a size or number option from a value already parsed.
    pub fn set_number(&mut self, name: &str, value: u64) -> Result<(), OptionError> {
        self.set(name, &value.to_string())
    }

    fn setting(&self, name: &str) -> Option<&Setting> {
        self.settings.iter().find(|s| s.name == name)
    }

    /// True when the option was given (not merely defaulted).
    pub fn is_set(&self, name: &str) -> bool {
        self.setting(name).is_some()
    }

    /// The option's text as given.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.setting(name).map(|s| s.text.as_str())
    }

    pub fn get_bool(&self, name: &str) -> Option<bool> {
        match self.setting(name)?.value {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// A size or number option's value.
    pub fn get_number(&self, name: &str) -> Option<u64> {
        match self.setting(name)?.value {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }

    /// The names of the options that were given, in the order given.
    pub fn given_names(&self) -> impl Iterator<Item = &str> {
        self.settings.iter().map(|s| s.name.as_str())
    }

    /// The option part of qemu-img's `Formatting` line: `name=value` for
    /// every option given or defaulted, in the format's order.
    pub fn formatting_text(&self) -> String {
        let mut parts = Vec::new();
        for d in &self.descs {
            let given = self.setting(d.name);
            let text = match (given, d.default) {
                (Some(s), _) => match (d.ty, &s.value) {
                    (OptType::Str, _) => s.text.replace(',', ",,"),
                    (_, Value::Number(n)) => (*n as i64).to_string(),
                    _ => s.text.clone(),
                },
                (None, Some(def)) => def.to_string(),
                (None, None) => continue,
            };
            parts.push(format!("{}={}", d.name, text));
        }
        parts.join(" ")
    }

    /// The `-o help` listing: sorted by name, qemu's layout.
    pub fn help_text(&self, caption: &str, with_protocol_note: bool) -> String {
        let mut descs = self.descs.clone();
        descs.sort_by_key(|d| d.name);
        let mut out = format!("{caption}\n");
        for d in descs {
            let head = format!("  {}=<{}>", d.name, d.ty.help_name());
            out.push_str(&format!("{head:<24} - {}\n", d.help));
        }
        if with_protocol_note {
            out.push_str(
                "\nThe protocol level may support further options.\n\
                 Specify the target filename to include those options.\n",
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESCS: &[OptDesc] = &[
        OptDesc::new("cluster_size", OptType::Size, "c").with_default("65536"),
        OptDesc::new("lazy_refcounts", OptType::Bool, "l").with_default("off"),
        OptDesc::new("backing_file", OptType::Str, "b"),
        OptDesc::new("refcount_bits", OptType::Number, "r").with_default("16"),
        SIZE_OPTION,
    ];

    fn parse(args: &[&str]) -> Result<Options, OptionError> {
        let mut o = Options::new(DESCS, true);
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        for a in &args {
            check_option_list(a)?;
        }
        o.parse(&args)?;
        Ok(o)
    }

    #[test]
    fn escapes_and_repeats() {
        let o = parse(&["backing_file=a,,b", "cluster_size=4k", "cluster_size=8k"]).unwrap();
        assert_eq!(o.get_str("backing_file"), Some("a,b"));
        assert_eq!(o.get_number("cluster_size"), Some(8192));
        assert_eq!(
            o.formatting_text(),
            "cluster_size=8192 lazy_refcounts=off backing_file=a,,b refcount_bits=16"
        );
    }

    #[test]
    fn bare_keys() {
        let o = parse(&["lazy_refcounts"]).unwrap();
        assert_eq!(o.get_bool("lazy_refcounts"), Some(true));
        let o = parse(&["nolazy_refcounts"]).unwrap();
        assert_eq!(o.get_bool("lazy_refcounts"), Some(false));
        assert_eq!(
            parse(&["nocow"]).unwrap_err(),
            OptionError::UnknownOption("cow".into())
        );
    }

    #[test]
    fn bad_lists_and_values() {
        assert!(matches!(parse(&["a=1,"]), Err(OptionError::InvalidList(_))));
        assert!(matches!(parse(&[",a=1"]), Err(OptionError::InvalidList(_))));
        assert!(parse(&["backing_file=x,,"]).is_ok());
        assert_eq!(
            parse(&["lazy_refcounts=ON"]).unwrap_err(),
            OptionError::ExpectsBool("lazy_refcounts".into())
        );
        assert_eq!(
            parse(&["refcount_bits=abc"]).unwrap_err(),
            OptionError::ExpectsNumber("refcount_bits".into())
        );
        assert_eq!(
            parse(&["size=-1"]).unwrap_err(),
            OptionError::OutOfRange {
                name: "size".into(),
                value: "-1".into()
            }
        );
        assert!(is_help_request(&["cluster_size=4k,help".into()]));
        assert!(is_help_request(&["?".into()]));
    }

    #[test]
    fn numbers_wrap_like_strtoull() {
        let o = parse(&["refcount_bits=-1"]).unwrap();
        assert_eq!(o.get_number("refcount_bits"), Some(u64::MAX));
        assert!(o.formatting_text().contains("refcount_bits=-1"));
        let o = parse(&["refcount_bits=0x10"]).unwrap();
        assert_eq!(o.get_number("refcount_bits"), Some(16));
    }
}
