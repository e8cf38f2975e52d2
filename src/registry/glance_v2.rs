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

/// Interprets a create reply: the image record, or the registry's refusal
/// (`error_of` turns the reply into the one-line error).
pub fn created(reply: Reply, error_of: impl Fn(&Reply) -> String) -> Result<Value> {
    if !reply.ok() {
        return Err(Error::Failed(format!(
            "the registry refused to create the image: {}",
            error_of(&reply)
        )));
    }
    let record = reply.json("creating the image")?;
    if record.get("id").and_then(Value::as_str).is_none() {
        return Err(Error::Failed(
            "the registry's reply to the create has no image id".to_string(),
        ));
    }
    Ok(record)
}

/// `GET /v2/images/{id}`.
pub fn get(http: &Http, conn: &Connection, id: &str) -> Result<Value> {
    let what = "reading the image record back";
    let reply = http.send(
        Request::new("GET", image_url(conn, id)).token(conn.token.as_ref()),
        what,
    )?;
    if !reply.ok() {
        return Err(Error::Failed(format!(
            "{what} (image {id}): {}",
            reply.error_line()
        )));
    }
    reply.json(what)
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
