//! Nothing left half-done: the image record this run created is deleted
//! when the run fails or is interrupted after the record may exist, and
//! if it cannot be, its id and the command that deletes it are printed.
//!
//! Only a record this run created (its id chosen by this run, or the one
//! of the 201 Created this run was answered with) and still `queued` or
//! `saving` is ever deleted. On SIGINT, SIGTERM or SIGHUP the same check
//! runs from [`crate::cleanup`]'s signal thread, over its own client with
//! a short deadline and no retries, before the process dies of the signal.

use super::auth::Connection;
use super::http::{Http, HttpSettings};
use super::{glance_v1, glance_v2};
use crate::cli::register::Api;
use crate::error::{Error, Result};
use serde_json::Value;
use std::time::Duration;

/// The statuses of a record that a failed upload leaves and that diskforge
/// deletes (when this run created it): nothing else is ever deleted.
pub const DELETABLE: [&str; 2] = ["queued", "saving"];

/// The deadline of each request made on a signal (reading the record,
/// deleting it): a Ctrl-C must not hang on a stalled registry.
pub const SIGNAL_DEADLINE: Duration = Duration::from_secs(5);

/// Where the record lives and how it is undone.
#[derive(Clone)]
pub struct Target {
    pub api: Api,
    pub conn: Connection,
    /// `--keep-on-failure`: the record is kept (and said so).
    pub keep: bool,
}

impl Target {
    /// The record's status now; `None` when there is no such record.
    pub fn status(&self, http: &Http, id: &str) -> Result<Option<String>> {
        let record = match self.api {
            Api::GlanceV1 => glance_v1::find(http, &self.conn, id)?,
            Api::GlanceV2 | Api::Ims => glance_v2::find(http, &self.conn, id)?,
        };
        Ok(record.map(|r| status_of(&r)))
    }

    fn delete(&self, http: &Http, id: &str) -> Result<()> {
        match self.api {
            Api::GlanceV1 => glance_v1::delete(http, &self.conn, id),
            Api::GlanceV2 | Api::Ims => glance_v2::delete(http, &self.conn, id),
        }
    }

    /// The error `e` after a failure once the record `id` may exist: the
    /// record is read back and, if it is there and still queued or saving,
    /// deleted; the line says what became of it.
    pub fn settle(&self, http: &Http, e: Error, id: &str) -> Error {
        let status = self.status(http, id);
        failure_line(e, id, status, self.keep, |id| self.delete(http, id))
    }

    /// Arms the signal hook for the record `id`: on SIGINT, SIGTERM or
    /// SIGHUP it is settled (over a client with [`SIGNAL_DEADLINE`] and
    /// no retries) and the outcome printed. `None` if that client cannot
    /// be made (it can: the run's own was made from the same settings).
    pub fn arm(&self, settings: &HttpSettings, id: &str) -> Option<crate::cleanup::Hook> {
        let http = Http::new(HttpSettings {
            timeout: SIGNAL_DEADLINE,
            retries: 0,
            announce_retries: false,
            ..settings.clone()
        })
        .ok()?;
        let target = self.clone();
        let id = id.to_string();
        Some(crate::cleanup::on_signal(move || {
            let interrupted = Error::Failed("interrupted".to_string());
            let line = match target.status(&http, &id) {
                Ok(None) => return,
                status => failure_line(interrupted, &id, status, target.keep, |id| {
                    target.delete(&http, id)
                }),
            };
            crate::errln!(
                "{}: {}",
                crate::cli::program_name(),
                http.scrub(&line.to_string())
            );
        }))
    }
}

pub fn status_of(record: &Value) -> String {
    record
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string()
}

/// The one error line after a failure once the record `id` may exist:
/// why, what was left, and whether it was deleted. `status` is the
/// record's status read back just now (`None`: there is no record, and
/// `e` is returned as it is): only a `queued` or `saving` record (one this
/// run created: the caller has checked that) is deleted.
pub fn failure_line(
    e: Error,
    id: &str,
    status: Result<Option<String>>,
    keep: bool,
    delete: impl FnOnce(&str) -> Result<()>,
) -> Error {
    let status = match status {
        Ok(Some(s)) => s,
        Ok(None) => return e,
        Err(why) => {
            let (e, why) = (e.to_string(), why.to_string());
            let why = if why == e {
                String::new()
            } else {
                format!(" ({why})")
            };
            return Error::Failed(format!(
                "{e}; image {id} may be left behind: its status could not be read{why}, \
                 so it was not deleted; check it with `openstack image show {id}` and, \
                 if it is queued or saving, delete it with `openstack image delete {id}`"
            ));
        }
    };
    if keep {
        return Error::Failed(format!(
            "{e}; image {id} left behind (status {status}, kept by --keep-on-failure; \
             a failed upload cannot be retried on it: delete it with `openstack image delete {id}`)"
        ));
    }
    if !DELETABLE.contains(&status.as_str()) {
        return Error::Failed(format!(
            "{e}; image {id} left behind (status {status}): diskforge deletes only a record \
             it created that is still queued or saving; check it and delete it with \
             `openstack image delete {id}`"
        ));
    }
    match delete(id) {
        Ok(()) => Error::Failed(format!(
            "{e}; the image record {id} (status {status}) was deleted (--keep-on-failure keeps it)"
        )),
        Err(d) => Error::Failed(format!(
            "{e}; image {id} left behind (status {status}); deleting it failed: {d}; \
             delete it with `openstack image delete {id}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_deleted() {
        let fail = || Error::Failed("boom".to_string());
        // name, status read back, keep, delete succeeds, deleted, line contains
        type Case = (
            &'static str,
            Result<Option<String>>,
            bool,
            bool,
            bool,
            &'static str,
        );
        let cases: &[Case] = &[
            (
                "queued is deleted",
                Ok(Some("queued".into())),
                false,
                true,
                true,
                "was deleted",
            ),
            (
                "saving is deleted",
                Ok(Some("saving".into())),
                false,
                true,
                true,
                "was deleted",
            ),
            (
                "active is left",
                Ok(Some("active".into())),
                false,
                true,
                false,
                "left behind (status active)",
            ),
            (
                "kept on request",
                Ok(Some("queued".into())),
                true,
                true,
                false,
                "--keep-on-failure",
            ),
            (
                "no record: the error alone",
                Ok(None),
                false,
                true,
                false,
                "boom",
            ),
            (
                "unreadable: the commands",
                Err(fail()),
                false,
                true,
                false,
                "openstack image delete X",
            ),
            (
                "delete fails: the command",
                Ok(Some("queued".into())),
                false,
                false,
                true,
                "openstack image delete X",
            ),
        ];
        for (name, status, keep, ok, deleted, says) in cases {
            let status = match status {
                Ok(s) => Ok(s.clone()),
                Err(_) => Err(fail()),
            };
            let mut called = false;
            let line = failure_line(fail(), "X", status, *keep, |_| {
                called = true;
                if *ok { Ok(()) } else { Err(fail()) }
            })
            .to_string();
            assert_eq!(called, *deleted, "{name}: {line}");
            assert!(line.contains(says), "{name}: {line}");
        }
    }
}
