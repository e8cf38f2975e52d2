//! qcow2: qemu's copy-on-write format (`docs/interop/qcow2.rst`).

pub mod alloc;
mod bitmaps;
pub mod check;
mod check_tables;
mod copied;
pub mod create;
pub mod header;
pub mod inspect;
pub mod layout;
mod luks;
pub mod map;
mod rebuild;
mod refs;

pub use create::create;

use crate::options::{OptDesc, OptType, SIZE_OPTION};

/// qcow2's creation options, in qemu's print order.
pub const CREATE_OPTIONS: &[OptDesc] = &[
    OptDesc::new(
        "encryption",
        OptType::Bool,
        "Encrypt the image with format 'aes'. (Deprecated in favor of encrypt.format=aes)",
    ),
    OptDesc::new(
        "encrypt.format",
        OptType::Str,
        "Encrypt the image, format choices: 'aes', 'luks'",
    ),
    OptDesc::new(
        "encrypt.key-secret",
        OptType::Str,
        "ID of secret providing qcow AES key or LUKS passphrase",
    ),
    OptDesc::new(
        "encrypt.cipher-alg",
        OptType::Str,
        "Name of encryption cipher algorithm",
    ),
    OptDesc::new(
        "encrypt.cipher-mode",
        OptType::Str,
        "Name of encryption cipher mode",
    ),
    OptDesc::new(
        "encrypt.ivgen-alg",
        OptType::Str,
        "Name of IV generator algorithm",
    ),
    OptDesc::new(
        "encrypt.ivgen-hash-alg",
        OptType::Str,
        "Name of IV generator hash algorithm",
    ),
    OptDesc::new(
        "encrypt.hash-alg",
        OptType::Str,
        "Name of encryption hash algorithm",
    ),
    OptDesc::new(
        "encrypt.iter-time",
        OptType::Number,
        "Time to spend in PBKDF in milliseconds",
    ),
    OptDesc::new("cluster_size", OptType::Size, "qcow2 cluster size").with_default("65536"),
    OptDesc::new("extended_l2", OptType::Bool, "Extended L2 tables").with_default("off"),
    OptDesc::new(
        "preallocation",
        OptType::Str,
        "Preallocation mode (allowed values: off, metadata, falloc, full)",
    ),
    OptDesc::new(
        "compression_type",
        OptType::Str,
        "Compression method used for image cluster compression",
    )
    .with_default("zlib"),
    SIZE_OPTION,
    OptDesc::new(
        "compat",
        OptType::Str,
        "Compatibility level (v2 [0.10] or v3 [1.1])",
    ),
    OptDesc::new("backing_file", OptType::Str, "File name of a base image"),
    OptDesc::new(
        "backing_fmt",
        OptType::Str,
        "Image format of the base image",
    ),
    OptDesc::new(
        "data_file",
        OptType::Str,
        "File name of an external data file",
    ),
    OptDesc::new(
        "data_file_raw",
        OptType::Bool,
        "The external data file must stay valid as a raw image",
    ),
    OptDesc::new("lazy_refcounts", OptType::Bool, "Postpone refcount updates").with_default("off"),
    OptDesc::new(
        "refcount_bits",
        OptType::Number,
        "Width of a reference count entry in bits",
    )
    .with_default("16"),
];
