//! OpenStack Glance Image API v2: `POST /v2/images` (JSON record),
//! `PUT /v2/images/{id}/file` (data), `GET` and `DELETE /v2/images/{id}`.
//! Huawei IMS's native API is the same wire format (see [`super::ims`]).

use super::auth::Connection;
use super::http::{Http, Reply, Request};
use crate::error::{Error, Result};
use serde_json::Value;
use std::io::Read;

/// `{endpoint}/v2/images`.
pub fn images_url(conn: &Connection) -> String {
    format!("{}/v2/images", conn.image_url)
}

/// `{endpoint}/v2/images/{id}`.
pub fn image_url(conn: &Connection, id: &str) -> String {
    format!("{}/v2/images/{id}", conn.image_url)
}

/// The create request for `body`.
pub fn create_request(conn: &Connection, body: Value) -> Request<'static> {
    Request::new("POST", images_url(conn))
        .token(conn.token.as_ref())
        .json(body)
}

/// The upload request streaming `len` bytes from `reader`.
pub fn upload_request<'a>(
    conn: &Connection,
    id: &str,
    reader: &'a mut dyn Read,
    len: u64,
    what: String,
) -> Request<'a> {
    Request::new("PUT", format!("{}/file", image_url(conn, id)))
        .token(conn.token.as_ref())
        .header("x-openstack-image-size", len.to_string())
        .stream(reader, len, what)
}

/// Interprets a create reply: the image record, or why it is not one.
/// Only a 201 (Created) whose record has the id diskforge sent (`sent_id`;
/// for IMS, which takes no id, any UUID) and the status `queued` is a new
/// record of this run: anything else — another 2xx, another image's
/// record — is refused, and nothing of it is touched later.
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
             no image record of this run was seen, so nothing is uploaded or deleted",
            reply.status_line()
        )));
    }
    let record = reply.json("creating the image")?;
    check_created_record(&record, sent_id)?;
    Ok(record)
}

/// The record of a create must be the one asked for, and new.
pub fn check_created_record(record: &Value, sent_id: Option<&str>) -> Result<()> {
    let got = record.get("id").and_then(Value::as_str);
    let status = record.get("status").and_then(Value::as_str);
    let refuse = |why: String| {
        Err(Error::Failed(format!(
            "creating the image: {why}; this is not the record diskforge asked for, \
             so nothing is uploaded to it or deleted"
        )))
    };
    match (got, sent_id) {
        (None, _) => refuse("the registry's reply has no image id".to_string()),
        (Some(g), Some(s)) if !g.eq_ignore_ascii_case(s) => refuse(format!(
            "the registry answered with image {g}, not with the id {s} that was sent"
        )),
        (Some(g), None) if !super::image::is_uuid(g) => {
            refuse(format!("the registry's image id '{g}' is not a UUID"))
        }
        _ if status != Some("queued") => refuse(format!(
            "the new record's status is {}, not queued",
            status.map_or("missing".to_string(), |s| format!("'{s}'"))
        )),
        _ => Ok(()),
    }
}

/// `GET /v2/images/{id}`.
pub fn get(http: &Http, conn: &Connection, id: &str) -> Result<Value> {
    find(http, conn, id)?.ok_or_else(|| {
        Error::Failed(format!(
            "reading the image record back (image {id}): 404 Not Found"
        ))
    })
}

/// `GET /v2/images/{id}`: the record, or `None` when there is none (404).
pub fn find(http: &Http, conn: &Connection, id: &str) -> Result<Option<Value>> {
    let what = "reading the image record back";
    let reply = http.send(
        Request::new("GET", image_url(conn, id)).token(conn.token.as_ref()),
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
    let record = reply.json(what)?;
    match record.get("id").and_then(Value::as_str) {
        Some(got) if got.eq_ignore_ascii_case(id) => Ok(Some(record)),
        got => Err(Error::Failed(format!(
            "{what} (image {id}): the registry answered with the record of {}",
            got.unwrap_or("no image id")
        ))),
    }
}

/// `DELETE /v2/images/{id}`.
pub fn delete(http: &Http, conn: &Connection, id: &str) -> Result<()> {
    let what = "deleting the image";
    let reply = http.send(
        Request::new("DELETE", image_url(conn, id)).token(conn.token.as_ref()),
        what,
    )?;
    if reply.ok() || reply.status == 404 {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "{what} {id}: {}",
            reply.error_line()
        )))
    }
}
