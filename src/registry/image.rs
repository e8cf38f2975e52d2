//! The image record to create, built from the command line and checked
//! against the rules of the target API before anything is sent.

use super::disk_format::IMS_DISK_FORMATS;
use crate::cli::register::{Api, RegisterArgs};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Longest name, tag, property key accepted by Glance (its schema's
/// maxLength and its database columns).
pub const MAX_STRING: usize = 255;

/// Glance's default `container_formats`.
pub const GLANCE_CONTAINER_FORMATS: [&str; 8] = [
    "ami",
    "ari",
    "aki",
    "bare",
    "ovf",
    "ova",
    "docker",
    "compressed",
];
/// IMS's range for min_disk, in GB.
pub const IMS_MIN_DISK: std::ops::RangeInclusive<u64> = 1..=1024;
/// The visibilities of Image API v2.
pub const VISIBILITIES: [&str; 4] = ["public", "private", "shared", "community"];

/// Image attributes Glance manages itself: read-only or reserved, refused
/// with 403 when sent as extra properties.
const READ_ONLY: [&str; 16] = [
    "status",
    "size",
    "virtual_size",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "created_at",
    "updated_at",
    "deleted",
    "deleted_at",
    "direct_url",
    "locations",
    "owner",
    "self",
    "file",
    "schema",
];
/// Base attributes that have their own flag.
const HAS_FLAG: [(&str, &str); 9] = [
    ("id", "--id"),
    ("name", "--name"),
    ("disk_format", "--disk-format"),
    ("container_format", "--container-format"),
    ("visibility", "--visibility"),
    ("protected", "--protected"),
    ("min_disk", "--min-disk"),
    ("min_ram", "--min-ram"),
    ("tags", "--tag"),
];
/// Prefix of the properties Glance reserves for itself.
const RESERVED_PREFIX: &str = "os_glance_";
/// Other attributes Glance refuses on create.
const RESERVED: [&str; 3] = ["os_hidden", "stores", "locations"];

/// The image record to create.
#[derive(Debug, Clone, Default)]
pub struct ImageMeta {
    pub name: String,
    pub id: Option<String>,
    pub disk_format: String,
    pub container_format: String,
    pub visibility: Option<String>,
    pub protected: Option<bool>,
    pub min_disk: Option<u64>,
    pub min_ram: Option<u64>,
    pub tags: Vec<String>,
    /// Extra properties (strings, as Glance requires), sorted by key.
    pub properties: BTreeMap<String, String>,
    /// A warning to print (a disk format forced against the file's).
    pub note: Option<String>,
    /// `--force-disk-format`: the disk format is not checked again.
    pub disk_format_forced: bool,
}

fn usage(msg: impl Into<String>) -> Error {
    Error::Usage(msg.into())
}

/// True for a UUID in Glance's accepted spelling (8-4-4-4-12 hex digits).
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A random (version 4) UUID, from the kernel's random source.
pub fn random_uuid() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Error::io("/dev/urandom: Could not read", e))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// A non-negative integer option (`--min-disk 10`).
pub fn parse_count(flag: &str, value: &str) -> Result<u64> {
    let v = value.trim();
    if v.starts_with('-') && v[1..].bytes().all(|b| b.is_ascii_digit()) && v.len() > 1 {
        return Err(usage(format!(
            "{flag}: '{value}' is negative; it must be a whole number >= 0"
        )));
    }
    v.parse::<u64>()
        .map_err(|_| usage(format!("{flag}: '{value}' is not a whole number >= 0")))
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

impl ImageMeta {
    /// The record for `args` and the image at `path`, checked for `api`.
    pub fn from_args(args: &RegisterArgs, path: &Path, name: Option<String>) -> Result<ImageMeta> {
        let name = match &name {
            Some(n) => n.clone(),
            None => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let (disk_format, note) = super::disk_format::choose(
            path,
            args.disk_format.as_deref(),
            args.api,
            args.force_disk_format,
        )?;
        let visibility = if args.public {
            Some("public".to_string())
        } else if args.private {
            Some("private".to_string())
        } else if args.shared {
            Some("shared".to_string())
        } else if args.community {
            Some("community".to_string())
        } else {
            args.visibility.clone()
        };
        let protected = if args.protected {
            Some(true)
        } else if args.unprotected {
            Some(false)
        } else {
            None
        };
        let min_disk = args
            .min_disk
            .as_deref()
            .map(|v| parse_count("--min-disk", v))
            .transpose()?;
        let min_ram = args
            .min_ram
            .as_deref()
            .map(|v| parse_count("--min-ram", v))
            .transpose()?;
        let mut tags: Vec<String> = Vec::new();
        for t in &args.tag {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        let mut properties = BTreeMap::new();
        for p in &args.property {
            let Some((k, v)) = p.split_once('=') else {
                return Err(usage(format!("--property '{p}': expected KEY=VALUE")));
            };
            properties.insert(k.to_string(), v.to_string());
        }
        if let Some(v) = &args.os_version {
            properties.insert("__os_version".to_string(), v.clone());
        }
        let meta = ImageMeta {
            name,
            id: args.id.clone(),
            disk_format,
            container_format: args
                .container_format
                .clone()
                .unwrap_or_else(|| "bare".to_string()),
            visibility,
            protected,
            min_disk,
            min_ram,
            tags,
            properties,
            note,
            disk_format_forced: args.force_disk_format,
        };
        meta.validate(args.api)?;
        Ok(meta)
    }

    /// Checks every field against what `api` accepts.
    pub fn validate(&self, api: Api) -> Result<()> {
        let name_len = char_len(&self.name);
        if name_len > MAX_STRING {
            return Err(usage(format!(
                "--name: {name_len} characters is too long (at most {MAX_STRING})"
            )));
        }
        if let Some(id) = &self.id
            && !is_uuid(id)
        {
            return Err(usage(format!(
                "--id '{id}': not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
            )));
        }
        for t in &self.tags {
            let n = char_len(t);
            if n == 0 || n > MAX_STRING {
                return Err(usage(format!(
                    "--tag '{}': a tag must be 1 to {MAX_STRING} characters (this one has {n})",
                    abbreviate(t)
                )));
            }
        }
        if let Some(v) = &self.visibility
            && !VISIBILITIES.contains(&v.as_str())
        {
            return Err(usage(format!(
                "--visibility '{v}': must be one of {}",
                VISIBILITIES.join(", ")
            )));
        }
        if self.disk_format.is_empty() || char_len(&self.disk_format) > MAX_STRING {
            return Err(usage(format!(
                "--disk-format '{}': invalid",
                abbreviate(&self.disk_format)
            )));
        }
        if self.container_format.is_empty() || char_len(&self.container_format) > MAX_STRING {
            return Err(usage(format!(
                "--container-format '{}': invalid",
                abbreviate(&self.container_format)
            )));
        }
        for (k, v) in &self.properties {
            check_property(k, v)?;
        }
        match api {
            Api::GlanceV2 => Ok(()),
            Api::GlanceV1 => self.validate_v1(),
            Api::Ims => self.validate_ims(),
        }
    }

    fn validate_v1(&self) -> Result<()> {
        if let Some(v) = &self.visibility
            && v != "public"
            && v != "private"
        {
            return Err(usage(format!(
                "--api glance-v1 has only public and private images (is_public), not '{v}'"
            )));
        }
        if !self.tags.is_empty() {
            return Err(usage(
                "--api glance-v1 has no image tags; use --property KEY=VALUE instead of --tag",
            ));
        }
        let fields = std::iter::once(("--name", self.name.as_str())).chain(
            self.properties
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        for (what, value) in fields {
            if value.chars().any(|c| !(' '..='~').contains(&c)) {
                return Err(usage(format!(
                    "{what}: '{}' cannot be sent in an Image API v1 header \
                     (only printable ASCII)",
                    abbreviate(value)
                )));
            }
        }
        for k in self.properties.keys() {
            if !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
            {
                return Err(usage(format!(
                    "--property '{k}': an Image API v1 property key must be letters, digits, '_', '-', '.' or ':'"
                )));
            }
        }
        Ok(())
    }

    fn validate_ims(&self) -> Result<()> {
        let name_len = char_len(&self.name);
        if name_len == 0 {
            return Err(usage("--name: IMS needs a name of 1 to 255 characters"));
        }
        if let Some(v) = &self.visibility
            && v != "private"
        {
            return Err(usage(format!(
                "--api ims: visibility can only be private, not '{v}'"
            )));
        }
        if !self.disk_format_forced && !IMS_DISK_FORMATS.contains(&self.disk_format.as_str()) {
            return Err(usage(format!(
                "--api ims: disk format '{}' is not accepted (IMS takes {}); convert the image or give --disk-format",
                self.disk_format,
                IMS_DISK_FORMATS.join(", ")
            )));
        }
        if self.container_format != "bare" {
            return Err(usage(format!(
                "--api ims: container format must be bare, not '{}'",
                self.container_format
            )));
        }
        if let Some(d) = self.min_disk
            && !IMS_MIN_DISK.contains(&d)
        {
            return Err(usage(format!("--min-disk {d}: IMS needs 1 to 1024 (GB)")));
        }
        for t in &self.tags {
            match t.split_once('=') {
                Some((k, _)) if !k.is_empty() => {}
                _ => {
                    return Err(usage(format!(
                        "--tag '{}': IMS tags are KEY=VALUE",
                        abbreviate(t)
                    )));
                }
            }
        }
        Ok(())
    }

    /// The Image API v2 / IMS create body.
    pub fn to_v2_json(&self, api: Api) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("name".into(), self.name.clone().into());
        if let Some(id) = &self.id {
            m.insert("id".into(), id.clone().into());
        }
        m.insert("disk_format".into(), self.disk_format.clone().into());
        m.insert(
            "container_format".into(),
            self.container_format.clone().into(),
        );
        match (&self.visibility, api) {
            (Some(v), _) => {
                m.insert("visibility".into(), v.clone().into());
            }
            (None, Api::Ims) => {
                m.insert("visibility".into(), "private".into());
            }
            _ => {}
        }
        if let Some(p) = self.protected {
            m.insert("protected".into(), p.into());
        }
        if let Some(d) = self.min_disk {
            m.insert("min_disk".into(), d.into());
        }
        if let Some(r) = self.min_ram {
            m.insert("min_ram".into(), r.into());
        }
        if !self.tags.is_empty() {
            m.insert("tags".into(), self.tags.clone().into());
        }
        for (k, v) in &self.properties {
            m.insert(k.clone(), v.clone().into());
        }
        serde_json::Value::Object(m)
    }

    /// The Image API v1 `x-image-meta-*` headers.
    pub fn to_v1_headers(&self, size: Option<u64>) -> Vec<(String, String)> {
        let mut h = vec![
            ("x-image-meta-name".to_string(), self.name.clone()),
            (
                "x-image-meta-disk_format".to_string(),
                self.disk_format.clone(),
            ),
            (
                "x-image-meta-container_format".to_string(),
                self.container_format.clone(),
            ),
        ];
        if let Some(id) = &self.id {
            h.push(("x-image-meta-id".to_string(), id.clone()));
        }
        if let Some(v) = &self.visibility {
            h.push((
                "x-image-meta-is_public".to_string(),
                (v == "public").to_string(),
            ));
        }
        if let Some(p) = self.protected {
            h.push(("x-image-meta-protected".to_string(), p.to_string()));
        }
        if let Some(d) = self.min_disk {
            h.push(("x-image-meta-min_disk".to_string(), d.to_string()));
        }
        if let Some(r) = self.min_ram {
            h.push(("x-image-meta-min_ram".to_string(), r.to_string()));
        }
        if let Some(s) = size {
            h.push(("x-image-meta-size".to_string(), s.to_string()));
        }
        for (k, v) in &self.properties {
            h.push((format!("x-image-meta-property-{k}"), v.clone()));
        }
        h
    }
}

fn abbreviate(s: &str) -> String {
    if char_len(s) > 40 {
        s.chars().take(40).collect::<String>() + "..."
    } else {
        s.to_string()
    }
}

/// Checks one `--property KEY=VALUE`.
fn check_property(k: &str, v: &str) -> Result<()> {
    let n = char_len(k);
    if n == 0 || n > MAX_STRING {
        return Err(usage(format!(
            "--property '{}': a property name must be 1 to {MAX_STRING} characters",
            abbreviate(k)
        )));
    }
    if READ_ONLY.contains(&k) {
        return Err(usage(format!(
            "--property {k}: '{k}' is read-only (the registry sets it)"
        )));
    }
    if k.starts_with(RESERVED_PREFIX) || RESERVED.contains(&k) {
        return Err(usage(format!(
            "--property {k}: '{k}' is reserved by Glance and cannot be set"
        )));
    }
    if let Some((_, flag)) = HAS_FLAG.iter().find(|(a, _)| *a == k) {
        return Err(usage(format!(
            "--property {k}: '{k}' is not an extra property; use {flag}"
        )));
    }
    if char_len(v) > 65535 {
        return Err(usage(format!(
            "--property {k}: the value is longer than 65535 characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        assert!(is_uuid("5c1ac1b6-6fb5-4c38-9ad0-4b1bc3b0fb5d"));
        assert!(is_uuid("5C1AC1B6-6FB5-4C38-9AD0-4B1BC3B0FB5D"));
        assert!(!is_uuid("5c1ac1b66fb54c389ad04b1bc3b0fb5d"));
        assert!(!is_uuid("5c1ac1b6-6fb5-4c38-9ad0-4b1bc3b0fb5g"));
        assert!(!is_uuid(""));
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("--min-disk", "10").unwrap(), 10);
        assert!(parse_count("--min-disk", "-1").is_err());
        assert!(parse_count("--min-disk", "1.5").is_err());
    }

    #[test]
    fn properties() {
        assert!(check_property("os_distro", "ubuntu").is_ok());
        assert!(check_property("status", "active").is_err());
        assert!(check_property("os_glance_x", "1").is_err());
        assert!(check_property("name", "x").is_err());
        assert!(check_property("", "x").is_err());
    }
}
