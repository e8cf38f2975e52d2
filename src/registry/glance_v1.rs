//! The legacy Image API v1 (removed from Glance in Rocky): metadata in
//! `x-image-meta-*` headers, custom properties in
//! `x-image-meta-property-*`, the image data as the body of
//! `POST /v1/images` (or no body for a queued record); the reply is
//! 201 with `{"image": {...}}`, `Location` and `ETag: <md5>`.

use super::auth::Connection;
use super::http::{Reply, Request};
use super::image::ImageMeta;
use crate::error::{Error, Result};
use serde_json::Value;
use std::io::Read;

/// `{endpoint}/v1/images`.
pub fn images_url(conn: &Connection) -> String {
    format!("{}/v1/images", conn.image_url)
}

/// The create request: headers only, or with the data streamed as body.
pub fn create_request<'a>(
    conn: &Connection,
    meta: &ImageMeta,
    data: Option<(&'a mut dyn Read, u64, String)>,
) -> Request<'a> {
    let size = data.as_ref().map(|(_, len, _)| *len);
    let mut req = Request::new("POST", images_url(conn)).token(conn.token.as_ref());
    for (k, v) in meta.to_v1_headers(size) {
        req = req.header(&k, v);
    }
    match data {
        Some((reader, len, what)) => req.stream(reader, len, what),
        None => req,
    }
}

/// The image record from a create reply.
pub fn created(reply: &Reply) -> Result<Value> {
    if !reply.ok() {
        return Err(Error::Failed(format!(
            "the registry refused to create the image: {}",
            reply.error_line()
        )));
    }
    let body = reply.json("creating the image")?;
    let mut record = body.get("image").cloned().ok_or_else(|| {
        Error::Failed("the registry's v1 reply has no \"image\" record".to_string())
    })?;
    if record.get("checksum").is_none_or(Value::is_null)
        && let Some(etag) = reply.header("ETag")
    {
        record["checksum"] = Value::String(etag.trim_matches('"').to_string());
    }
    Ok(record)
}
