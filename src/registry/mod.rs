//! `diskforge register`: publish an image to an image registry.
//!
//! One module per API ([`glance_v2`], [`glance_v1`], [`ims`]) over one
//! small HTTP/auth layer ([`http`], [`auth`]); [`image`] builds and checks
//! the record, [`upload`] streams and verifies the data.

pub mod auth;
pub mod certs;
pub mod clouds;
pub mod connect;
pub mod disk_format;
pub mod glance_v1;
pub mod glance_v2;
pub mod http;
pub mod image;
pub mod ims;
pub mod message;
pub mod output;
pub mod secrets;
pub mod undo;
pub mod upload;
mod url;

use crate::cli::register::{Api, RegisterArgs};
use crate::error::{Error, Result};
use crate::progress::Progress;
use auth::{Connection, Settings};
use http::{Http, HttpSettings, LogLevel, Scrubber};
use image::ImageMeta;
use serde_json::Value;
use std::fs::File;
use std::path::Path;
use std::time::Duration;
use undo::Target;
use upload::HashingReader;

/// Default deadline of one request, in seconds.
const DEFAULT_TIMEOUT_SECS: f64 = 60.0;
/// Default number of retries on 5xx answers and connection failures.
const DEFAULT_RETRIES: u32 = 3;
/// Most retries accepted by `--retries`.
const MAX_RETRIES: u32 = 10;

/// Runs `diskforge register`.
pub fn run(args: &RegisterArgs) -> Result<()> {
    let settings = Settings::gather(args)?;
    let secrets = Scrubber::default();
    for s in settings.secrets() {
        secrets.add(&s);
    }
    let result = register(args, settings, &secrets);
    // Whatever went wrong, the error line never carries a secret: not one
    // given, and not one issued during the run (the scrubber learnt those).
    result.map_err(|e| scrub_error(e, &secrets))
}

fn scrub_error(e: Error, secrets: &Scrubber) -> Error {
    match e {
        Error::Usage(m) => Error::Usage(secrets.scrub(&m)),
        Error::Failed(m) => Error::Failed(secrets.scrub(&m)),
        Error::Io { context, source } => Error::Io {
            context: secrets.scrub(&context),
            source,
        },
        // Image errors carry file names and image content, never secrets;
        // scrubbed as one line all the same.
        Error::Image(i) => Error::Failed(secrets.scrub(&i.to_string())),
    }
}

fn parse_timeout(v: Option<&str>) -> Result<Duration> {
    let Some(v) = v else {
        return Ok(Duration::from_secs_f64(DEFAULT_TIMEOUT_SECS));
    };
    match v.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(Error::Usage(format!(
            "--timeout '{v}': must be a number of seconds above 0 (at most 86400)"
        ))),
    }
}

fn parse_retries(v: Option<&str>) -> Result<u32> {
    let Some(v) = v else {
        return Ok(DEFAULT_RETRIES);
    };
    match v.trim().parse::<u32>() {
        Ok(n) if n <= MAX_RETRIES => Ok(n),
        _ => Err(Error::Usage(format!(
            "--retries '{v}': must be a whole number from 0 to {MAX_RETRIES}"
        ))),
    }
}

fn register(args: &RegisterArgs, settings: Settings, secrets: &Scrubber) -> Result<()> {
    // As openstack: with --file, the positional argument is the name.
    if args.file.is_some() && args.filename.is_some() && args.name.is_some() {
        return Err(Error::Usage(
            "register: with --file FILE the argument is the image name, and --name gives one \
             too: give one of them"
                .to_string(),
        ));
    }
    let Some(file) = args.file.as_deref().or(args.filename.as_deref()) else {
        return Err(Error::Usage(
            "register: missing FILENAME (the image to register, or --file FILE); try '--help'"
                .to_string(),
        ));
    };
    let upload = args.upload || args.file.is_some();
    let path = Path::new(file);
    let md = std::fs::metadata(path).map_err(Error::io_at(path, "Could not open"))?;
    if md.is_dir() {
        return Err(Error::usage_for(file, "is a directory, not an image file"));
    }
    let size = if md.file_type().is_file() {
        md.len()
    } else {
        // A block device: its size is where its end is.
        use std::io::{Seek, SeekFrom};
        File::open(path)
            .and_then(|mut f| f.seek(SeekFrom::End(0)))
            .map_err(Error::io_at(path, "Could not read the size of"))?
    };

    let name = match (&args.file, &args.filename) {
        (Some(_), Some(n)) => Some(n.clone()),
        _ => args.name.clone(),
    };
    let mut meta = ImageMeta::from_args(args, path, name)?;
    if let Some(note) = &meta.note {
        crate::errln!("{}: {note}", crate::cli::program_name());
    }
    // Glance (v2 and v1) takes the id from the client: choosing it here
    // makes a retried create safe (a second attempt meets its own id,
    // never makes a second image) and lets diskforge check that the
    // record it is answered with is the one it asked for.
    let id_chosen_here = args.api != Api::Ims && meta.id.is_none() && !args.dry_run;
    if id_chosen_here {
        meta.id = Some(image::random_uuid()?);
    }
    settings.check()?;
    let log = if args.debug || args.verbose >= 2 {
        LogLevel::Debug
    } else if args.verbose == 1 {
        LogLevel::Requests
    } else {
        LogLevel::Quiet
    };
    let http_settings = HttpSettings {
        timeout: parse_timeout(args.timeout.as_deref())?,
        retries: parse_retries(args.retries.as_deref())?,
        ca_file: settings.cacert.clone(),
        cert_file: settings.cert.clone(),
        key_file: settings.key.clone(),
        insecure: settings.insecure,
        log,
        announce_retries: !args.quiet,
        secrets: secrets.clone(),
    };
    let http = Http::new(http_settings.clone())?;

    let conn = auth::connect(&settings, &http, args.dry_run)?;
    let target = Target {
        api: args.api,
        conn: conn.clone(),
        keep: args.keep_on_failure,
    };
    let job = Job {
        args,
        http: &http,
        http_settings: &http_settings,
        target: &target,
        conn: &conn,
        path,
        size,
        upload,
        id_chosen_here,
    };
    let record = match args.api {
        Api::GlanceV2 | Api::Ims => job.register_v2(&meta)?,
        Api::GlanceV1 => job.register_v1(&meta)?,
    };
    if let Some(record) = record {
        let text = output::render(
            &http.scrubber().scrub_json(&record),
            args.output,
            args.format,
            &args.column,
        )?;
        crate::outln!("{text}");
    }
    Ok(())
}

/// One registration: what to send where.
struct Job<'a> {
    args: &'a RegisterArgs,
    http: &'a Http,
    /// The settings `http` was made from (the signal hook's client).
    http_settings: &'a HttpSettings,
    target: &'a Target,
    conn: &'a Connection,
    path: &'a Path,
    size: u64,
    upload: bool,
    /// The image id is a random one chosen by this run (not `--id`).
    id_chosen_here: bool,
}

impl Job<'_> {
    fn open(&self) -> Result<File> {
        File::open(self.path).map_err(Error::io_at(self.path, "Could not open"))
    }

    fn progress(&self) -> Progress {
        Progress::new(self.args.quiet, self.size, "Uploading")
    }

    fn note(&self, text: &str) {
        crate::errln!("{}: {}", crate::cli::program_name(), self.http.scrub(text));
    }

    /// After a verified upload: the line that says what was verified
    /// (not with --quiet), then any note.
    fn notes(&self, lines: Vec<String>) {
        for (i, n) in lines.iter().enumerate() {
            if i > 0 || !self.args.quiet {
                self.note(n);
            }
        }
    }

    /// A record created without data says so (not with --quiet).
    fn say_no_data(&self, record: &Value) {
        if self.upload || self.args.quiet {
            return;
        }
        let id = record.get("id").and_then(Value::as_str).unwrap_or("?");
        let status = record.get("status").and_then(Value::as_str).unwrap_or("?");
        self.note(&format!(
            "no data was uploaded: image {id} is an empty record (status {status}); \
             register with --upload (or --file FILE) to upload {}",
            self.path.display()
        ));
    }

    /// Glance v2 / IMS: create the record, then stream the data and verify.
    fn register_v2(&self, meta: &ImageMeta) -> Result<Option<Value>> {
        let body = meta.to_v2_json(self.args.api);
        let create = glance_v2::create_request(self.conn, body);
        if self.args.dry_run {
            crate::outln!("{}", create.describe());
            if self.upload {
                let id = meta.id.as_deref().unwrap_or("<id from the reply>");
                let mut empty = std::io::empty();
                let up = glance_v2::upload_request(
                    self.conn,
                    id,
                    &mut empty,
                    self.size,
                    self.path.display().to_string(),
                );
                crate::outln!("{}", up.describe());
            }
            return Ok(None);
        }
        let sent_id = meta.id.as_deref();
        // IMS takes no id: a create that may have arrived is never sent
        // again (it could make a second image).
        let create = if sent_id.is_none() {
            create.at_most_once()
        } else {
            create
        };
        // From here the record may exist: a signal settles it.
        let chosen = self.chosen_id(meta);
        let mut hook = chosen.and_then(|id| self.target.arm(self.http_settings, id));
        let reply = self
            .http
            .send(create, "creating the image")
            .map_err(|e| self.settle(e, chosen))?;
        let record = match (reply.status, reply.attempts, sent_id) {
            // A retried create that meets the random id this run chose: an
            // earlier attempt reached the registry after all. Take that
            // record if it is the one asked for (a --id of the user's own
            // may name someone else's image: never taken).
            (409, 2.., Some(id)) if self.id_chosen_here => {
                match glance_v2::get(self.http, self.conn, id) {
                    Ok(r) if r.get("name").and_then(Value::as_str) == Some(meta.name.as_str()) => {
                        glance_v2::check_created_record(&r, Some(id))?;
                        r
                    }
                    _ => glance_v2::created(&reply, sent_id)?,
                }
            }
            _ => glance_v2::created(&reply, sent_id)
                .map_err(|e| self.created_failed(e, &reply, meta))?,
        };
        if !self.upload {
            drop(hook);
            self.say_no_data(&record);
            return Ok(Some(record));
        }
        let id = record
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if hook.is_none() {
            hook = self.target.arm(self.http_settings, &id);
        }
        let result = self.upload_v2(&id);
        // Settled here, not by a signal from now on.
        drop(hook);
        result
            .map(Some)
            .map_err(|e| self.target.settle(self.http, e, &id))
    }

    /// The id of the record this run creates, when this run chose it.
    fn chosen_id<'m>(&self, meta: &'m ImageMeta) -> Option<&'m str> {
        meta.id.as_deref().filter(|_| self.id_chosen_here)
    }

    /// A failure once the record `chosen` (an id this run chose) may
    /// exist: the record is settled. Without one, `e` as it is.
    fn settle(&self, e: Error, chosen: Option<&str>) -> Error {
        match chosen {
            Some(id) => self.target.settle(self.http, e, id),
            None => e,
        }
    }

    /// A create reply that is not a usable record. After a 201 the record
    /// may exist all the same (a reply not JSON or too long): settled when
    /// the create named its id, named for a search when the registry chose.
    fn created_failed(&self, e: Error, reply: &http::Reply, meta: &ImageMeta) -> Error {
        if reply.status != 201 {
            return e;
        }
        // A 201 to a create that named an id made that record: it is this
        // run's (a record that already had the id would have been a 409).
        match meta.id.as_deref() {
            Some(id) => self.target.settle(self.http, e, id),
            None => Error::Failed(format!(
                "{e}; a record named '{}' may have been created: look for it with                  `openstack image list --name '{}'` and delete it with                  `openstack image delete ID`",
                meta.name, meta.name
            )),
        }
    }

    fn upload_v2(&self, id: &str) -> Result<Value> {
        let mut reader = HashingReader::new(self.open()?, self.progress());
        let req = glance_v2::upload_request(
            self.conn,
            id,
            &mut reader,
            self.size,
            self.path.display().to_string(),
        );
        let reply = self.http.send(req, "uploading the image data")?;
        let sent = reader.finish()?;
        check_upload_reply(&reply, sent.size, self.size)?;
        let record = glance_v2::get(self.http, self.conn, id)?;
        self.notes(upload::verify(&record, &sent, self.path)?);
        Ok(record)
    }

    /// Image API v1: one POST with headers and (with --upload) the data.
    fn register_v1(&self, meta: &ImageMeta) -> Result<Option<Value>> {
        if self.args.dry_run {
            let mut empty = std::io::empty();
            let data = self.upload.then(|| {
                (
                    &mut empty as &mut dyn std::io::Read,
                    self.size,
                    self.path.display().to_string(),
                )
            });
            crate::outln!(
                "{}",
                glance_v1::create_request(self.conn, meta, data).describe()
            );
            return Ok(None);
        }
        let sent_id = meta.id.as_deref();
        let chosen = self.chosen_id(meta);
        // From here the record may exist: a signal settles it.
        let hook = chosen.and_then(|id| self.target.arm(self.http_settings, id));
        if !self.upload {
            let req = glance_v1::create_request(self.conn, meta, None);
            let reply = self
                .http
                .send(req, "creating the image")
                .map_err(|e| self.settle(e, chosen))?;
            let record = glance_v1::created(&reply, sent_id)
                .map_err(|e| self.created_failed(e, &reply, meta))?;
            drop(hook);
            self.say_no_data(&record);
            return Ok(Some(record));
        }
        let result = self.upload_v1(meta, chosen);
        drop(hook);
        result.map(Some)
    }

    fn upload_v1(&self, meta: &ImageMeta, chosen: Option<&str>) -> Result<Value> {
        let sent_id = meta.id.as_deref();
        let mut reader = HashingReader::new(self.open()?, self.progress());
        let what = self.path.display().to_string();
        let req = glance_v1::create_request(self.conn, meta, Some((&mut reader, self.size, what)));
        let reply = self
            .http
            .send(req, "creating the image with its data")
            .map_err(|e| self.settle(e, chosen))?;
        let sent = reader.finish().map_err(|e| self.settle(e, chosen))?;
        check_upload_reply(&reply, sent.size, self.size).map_err(|e| self.settle(e, chosen))?;
        let record = glance_v1::created(&reply, sent_id)
            .map_err(|e| self.created_failed(e, &reply, meta))?;
        let id = record
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match upload::verify(&record, &sent, self.path) {
            Ok(notes) => {
                self.notes(notes);
                Ok(record)
            }
            Err(e) => Err(self.target.settle(self.http, e, &id)),
        }
    }
}

/// The reply to a streamed upload: a refusal (with the registry's status
/// and message, also when it came before all the data was sent), or a
/// success that came too early.
fn check_upload_reply(reply: &http::Reply, sent: u64, size: u64) -> Result<()> {
    let early = if reply.cut_short {
        format!(" (it answered after {sent} of {size} bytes and stopped reading)")
    } else {
        String::new()
    };
    if !reply.ok() {
        return Err(Error::Failed(format!(
            "the registry refused the image data: {}{early}",
            reply.error_line()
        )));
    }
    if reply.cut_short {
        return Err(Error::Failed(format!(
            "the registry answered {} before it had received all the data{early}",
            reply.status
        )));
    }
    Ok(())
}
