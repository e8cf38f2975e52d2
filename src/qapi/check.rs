//! `ImageCheck` (qemu's QAPI type) and qemu-img check's two printers.

use crate::qapi::qobject::{Value, write_json};
use std::io::{self, Write};

/// The result of a consistency check, as qemu's `BdrvCheckResult`
/// (counts zero when absent from the output).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageCheck {
    pub filename: String,
    pub format: String,
    pub check_errors: u64,
    pub image_end_offset: u64,
    pub corruptions: u64,
    pub leaks: u64,
    pub corruptions_fixed: u64,
    pub leaks_fixed: u64,
    pub total_clusters: u64,
    pub allocated_clusters: u64,
    pub fragmented_clusters: u64,
    pub compressed_clusters: u64,
}

impl ImageCheck {
    /// qemu-img check's exit status for a completed check: 1 internal
    /// errors, 2 corruptions, 3 leaks, 0 clean.
    pub fn exit_code(&self) -> i32 {
        if self.check_errors != 0 {
            1
        } else if self.corruptions != 0 {
            2
        } else if self.leaks != 0 {
            3
        } else {
            0
        }
    }

    /// Adds the counts of `other` (qemu's `qcow2_add_check_result`; the
    /// sizes and cluster counts are taken from `other` when `sizes`).
    pub fn add(&mut self, other: &ImageCheck, sizes: bool) {
        self.corruptions += other.corruptions;
        self.leaks += other.leaks;
        self.check_errors += other.check_errors;
        self.corruptions_fixed += other.corruptions_fixed;
        self.leaks_fixed += other.leaks_fixed;
        if sizes {
            self.image_end_offset = other.image_end_offset;
            self.total_clusters = other.total_clusters;
            self.allocated_clusters = other.allocated_clusters;
            self.fragmented_clusters = other.fragmented_clusters;
            self.compressed_clusters = other.compressed_clusters;
        }
    }
}

/// The human form (`dump_human_image_check`).
pub fn write_human(out: &mut dyn Write, c: &ImageCheck) -> io::Result<()> {
    if c.corruptions == 0 && c.leaks == 0 && c.check_errors == 0 {
        writeln!(out, "No errors were found on the image.")?;
    } else {
        if c.corruptions != 0 {
            write!(
                out,
                "\n{} errors were found on the image.\n\
                 Data may be corrupted, or further writes to the image may corrupt it.\n",
                c.corruptions
            )?;
        }
        if c.leaks != 0 {
            write!(
                out,
                "\n{} leaked clusters were found on the image.\n\
                 This means waste of disk space, but no harm to data.\n",
                c.leaks
            )?;
        }
        if c.check_errors != 0 {
            write!(
                out,
                "\n{} internal errors have occurred during the check.\n",
                c.check_errors
            )?;
        }
    }
    if c.total_clusters != 0 && c.allocated_clusters != 0 {
        let alloc = c.allocated_clusters as f64;
        writeln!(
            out,
            "{}/{} = {:.2}% allocated, {:.2}% fragmented, {:.2}% compressed clusters",
            c.allocated_clusters,
            c.total_clusters,
            alloc * 100.0 / c.total_clusters as f64,
            c.fragmented_clusters as f64 * 100.0 / alloc,
            c.compressed_clusters as f64 * 100.0 / alloc
        )?;
    }
    if c.image_end_offset != 0 {
        writeln!(out, "Image end offset: {}", c.image_end_offset)?;
    }
    Ok(())
}

/// The JSON form (`dump_json_image_check`): optional members only when
/// not zero, in qemu's dict order, and a final newline.
pub fn write_json_check(out: &mut dyn Write, c: &ImageCheck) -> io::Result<()> {
    let mut m: Vec<(&'static str, Value)> = vec![
        ("filename", Value::str(&c.filename)),
        ("format", Value::str(&c.format)),
        ("check-errors", Value::UInt(c.check_errors)),
    ];
    let optional = [
        ("image-end-offset", c.image_end_offset),
        ("corruptions", c.corruptions),
        ("leaks", c.leaks),
        ("corruptions-fixed", c.corruptions_fixed),
        ("leaks-fixed", c.leaks_fixed),
        ("total-clusters", c.total_clusters),
        ("allocated-clusters", c.allocated_clusters),
        ("fragmented-clusters", c.fragmented_clusters),
        ("compressed-clusters", c.compressed_clusters),
    ];
    for (k, v) in optional {
        if v != 0 {
            m.push((k, Value::UInt(v)));
        }
    }
    write_json(out, &Value::Dict(m), 0)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_order_is_qemus() {
        let c = ImageCheck {
            filename: "cc.qcow2".into(),
            format: "qcow2".into(),
            image_end_offset: 393216,
            total_clusters: 64,
            allocated_clusters: 3,
            fragmented_clusters: 3,
            compressed_clusters: 3,
            ..ImageCheck::default()
        };
        let mut out = Vec::new();
        write_json_check(&mut out, &c).unwrap();
        let keys: Vec<&str> = std::str::from_utf8(&out)
            .unwrap()
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
            .collect();
        assert_eq!(
            keys,
            [
                "image-end-offset",
                "compressed-clusters",
                "total-clusters",
                "check-errors",
                "allocated-clusters",
                "filename",
                "format",
                "fragmented-clusters"
            ]
        );
    }
}
