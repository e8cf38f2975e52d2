//! Huawei Cloud IMS, "Creating Image Metadata (Native OpenStack API)":
//! Glance v2's wire format (`POST /v2/images`, then `PUT .../file`) with
//! IMS's own rules, checked before sending by
//! [`super::image::ImageMeta::validate`] (visibility private only, disk
//! formats zvhd2 | vhd | raw | qcow2, bare containers, tags `key=value`,
//! min_disk 1..1024, name 1..255) and `__os_version` for `--os-version`.
//! Its error bodies come in two shapes, both read by
//! [`super::http::error_message`]:
//! `{"error": {"code": "IMG.0024", "message": ...}}` from IMS and
//! `{"error_code": "APIGW.0301", "error_msg": ..., "request_id": ...}`
//! from the API gateway.

/// IMS's default operating system when `--os-version` is not given
/// (the platform applies it; diskforge does not send it).
pub const DEFAULT_OS_VERSION: &str = "Other Linux(64 bit)";

/// Extra record fields IMS adds to its replies, shown as they come.
pub const IMS_FIELDS: [&str; 9] = [
    "__os_type",
    "__platform",
    "__os_bit",
    "__imagetype",
    "__isregistered",
    "__image_source_type",
    "__image_size",
    "virtual_env_type",
    "__root_origin",
];
