//! The legacy Image API v1 (removed from Glance in Rocky): metadata in
//! `x-image-meta-*` headers, custom properties in
//! `x-image-meta-property-*`, the image data as the body of
//! `POST /v1/images` (or no body for a queued record); the reply is
//! 201 with `{"image": {...}}`, `Location` and `ETag: <md5>`.

use super::auth::Connection;
use super::http::{Http, Reply, Request};
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

/// The image record from a create reply: only a 201 whose record has the
/// id diskforge sent.
pub fn created(reply: &Reply, sent_id: Option<&str>) -> Result<Value> {
    if !reply.ok() {
        return Err(Error::Failed(format!(
            "the registry refused to create the image: {}",
            reply.error_line()
        )));
    }
    if reply.status != 201 {
        return Err(Error::Failed(format!(
            "creating the image: the registry answered {} instead of 201 Created: \
             no image record of this run was seen, so nothing is deleted",
            reply.status_line()
        )));
    }
    let body = reply.json("creating the image")?;
    let mut record = body.get("image").cloned().ok_or_else(|| {
        Error::Failed("the registry's v1 reply has no \"image\" record".to_string())
    })?;
    let got = record.get("id").and_then(Value::as_str);
    if let (Some(sent), got) = (sent_id, got)
        && !got.is_some_and(|g| g.eq_ignore_ascii_case(sent))
    {
        return Err(Error::Failed(format!(
            "creating the image: the registry answered with image {}, not with the id {sent} \
             that was sent; this is not the record diskforge asked for, so nothing of it is \
             deleted",
            got.unwrap_or("(none)")
        )));
    }
    if record.get("checksum").is_none_or(Value::is_null)
        && let Some(etag) = reply.header("ETag")
    {
        record["checksum"] = Value::String(etag.trim_matches('"').to_string());
    }
    Ok(record)
}

/// `GET /v1/images/{id}`: the record, to check its status.
pub fn get(http: &Http, conn: &Connection, id: &str) -> Result<Value> {
    find(http, conn, id)?.ok_or_else(|| {
        Error::Failed(format!(
            "reading the image record back (image {id}): 404 Not Found"
        ))
    })
}

/// `GET /v1/images/{id}`: the record, or `None` when there is none (404).
pub fn find(http: &Http, conn: &Connection, id: &str) -> Result<Option<Value>> {
    let what = "reading the image record back";
    let reply = http.send(
        Request::new("GET", format!("{}/{id}", images_url(conn))).token(conn.token.as_ref()),
        what,
    )?;
    if reply.status == 404 {
        return Ok(None);
    }
    if !reply.ok() {
        return Err(Error::Failed(format!(
            "{what} (image {id}): {}",
            reply.error_line()
        )));
    }
    let record = reply.json(what)?.get("image").cloned().unwrap_or_default();
    match record.get("id").and_then(Value::as_str) {
        Some(got) if got.eq_ignore_ascii_case(id) => Ok(Some(record)),
        _ => Err(Error::Failed(format!(
            "{what} (image {id}): the reply is not that image's record"
        ))),
    }
}

/// `DELETE /v1/images/{id}`.
pub fn delete(http: &Http, conn: &Connection, id: &str) -> Result<()> {
    let what = "deleting the image";
    let req =
        Request::new("DELETE", format!("{}/{id}", images_url(conn))).token(conn.token.as_ref());
    let reply = http.send(req, what)?;
    if reply.ok() || reply.status == 404 {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "{what} {id}: {}",
            reply.error_line()
        )))
    }
}
