//! The one small HTTP layer every registry API goes through: a ureq agent
//! over diskforge's own connections ([`super::connect`]: system roots,
//! `--os-cacert`, `--insecure`), one deadline per request, bounded and
//! announced retries, redirects followed only within one origin, logging
//! with secrets scrubbed, dry runs, and registry error bodies turned into
//! one line.
//!
//! Security rules kept here for every request:
//! - A redirect is followed only for a GET and only to the same scheme,
//!   host and port; any other redirect is an error that names it. So the
//!   token (`X-Auth-Token`) never reaches another origin, an https request
//!   is never downgraded to http, and a POST or PUT answered by a redirect
//!   never passes for a success.
//! - `--timeout` bounds each request as a whole (connecting, sending,
//!   waiting and reading the reply), so a server that trickles its answer
//!   cannot stall a run. A streamed upload is bounded by the connection,
//!   every stall while sending, and its reply after the last byte.
//! - Every reply body is scrubbed of the run's secrets as it arrives (a
//!   token Keystone issues becomes a secret as soon as it is seen).
//! - Certificate errors are explained ([`super::certs::explain`]) and
//!   never retried.

use super::certs::{self, Roots};
use super::connect::{self, Stop, StopAware};
pub use super::message::{error_message, one_line, strip_html};
pub use super::secrets::{
    MIN_SCRUBBED_SECRET, REDACTED, Scrubber, Secret, redact_header, redact_json,
};
use super::url::{host_of, is_redirect, origin, resolve_location};
use crate::error::{Error, Result};
use std::io::Read;
use std::time::{Duration, Instant};
use ureq::http;

/// How much a request is logged on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Quiet,
    /// `-v`: one line per request and per reply.
    Requests,
    /// `--debug` or `-vv`: headers and JSON bodies as well.
    Debug,
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The deadline of one request (see the module comment).
    pub timeout: Duration,
    /// Retries after a 5xx answer or a connection failure.
    pub retries: u32,
    pub ca_file: Option<String>,
    /// Client certificate (chain, maybe with its key) and key, PEM.
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub insecure: bool,
    pub log: LogLevel,
    /// Say on stderr when a request is retried (off with `--quiet`).
    pub announce_retries: bool,
    /// The run's secrets, scrubbed from everything logged or returned.
    pub secrets: Scrubber,
}

/// A request body.
pub enum Body<'a> {
    None,
    Json(serde_json::Value),
    /// `len` bytes streamed from `reader` (never held in memory), described
    /// in logs as `what`.
    Stream {
        reader: &'a mut dyn Read,
        len: u64,
        what: String,
    },
}

/// One request.
pub struct Request<'a> {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Body<'a>,
    /// Not idempotent (a create that names no id): sent again only when
    /// the connection could not be made, never once it may have arrived.
    pub at_most_once: bool,
}

impl<'a> Request<'a> {
    pub fn new(method: &'static str, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: vec![("Accept".to_string(), "application/json".to_string())],
            body: Body::None,
            at_most_once: false,
        }
    }

    /// Marks the request as one that must not reach the server twice.
    pub fn at_most_once(mut self) -> Self {
        self.at_most_once = true;
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Adds `X-Auth-Token` when there is a token.
    pub fn token(self, token: Option<&Secret>) -> Self {
        match token {
            Some(t) => self.header("X-Auth-Token", t.expose()),
            None => self,
        }
    }

    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Body::Json(body);
        self.header("Content-Type", "application/json")
    }

    pub fn stream(mut self, reader: &'a mut dyn Read, len: u64, what: String) -> Self {
        self.body = Body::Stream { reader, len, what };
        self.header("Content-Type", "application/octet-stream")
    }

    /// The request as text (method, URL, headers, body) with every secret
    /// redacted: what `--dry-run` prints and `--debug` logs.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {}\n", self.method, self.url);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {}\n", redact_header(k, v)));
        }
        match &self.body {
            Body::None => {}
            Body::Json(v) => {
                let mut v = v.clone();
                redact_json(&mut v);
                let text = serde_json::to_string_pretty(&v).unwrap_or_default();
                s.push('\n');
                s.push_str(&text);
                s.push('\n');
            }
            Body::Stream { len, what, .. } => {
                s.push_str(&format!(
                    "Content-Length: {len}\n\n<{len} bytes of {what}>\n"
                ));
            }
        }
        s
    }

    fn replayable(&self) -> bool {
        !matches!(self.body, Body::Stream { .. })
    }
}

/// A reply: status, headers and (bounded) body.
#[derive(Debug)]
pub struct Reply {
    /// How many times the request was sent to get this reply.
    pub attempts: u32,
    /// The registry answered before it had read the whole request body
    /// (the rest was not sent).
    pub cut_short: bool,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body was longer than [`MAX_REPLY_BYTES`] and was not kept.
    pub too_long: bool,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self, what: &str) -> Result<serde_json::Value> {
        if self.too_long {
            return Err(Error::Failed(format!(
                "{what}: the registry's reply ({}) is over {} MiB, more than any record",
                self.status,
                MAX_REPLY_BYTES >> 20
            )));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::Failed(format!(
                "{what}: the registry's reply ({}) is not JSON: {e}",
                self.status
            ))
        })
    }

    /// The status and its reason: `201 Created`.
    pub fn status_line(&self) -> String {
        let reason = http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        format!("{} {reason}", self.status).trim_end().to_string()
    }

    /// The registry's message for a failed request, as one line: the
    /// status, then the message found in the body (HTML stripped).
    pub fn error_line(&self) -> String {
        let status = self.status_line();
        match error_message(&self.body) {
            Some(m) if !m.is_empty() => format!("{status}: {m}"),
            _ => status.to_string(),
        }
    }
}

/// Most bytes of a reply body read (records and catalogs are far smaller).
const MAX_REPLY_BYTES: u64 = 16 << 20;

/// Most redirects followed for one request (all within one origin).
const MAX_REDIRECTS: u32 = 5;

/// The HTTP client.
pub struct Http {
    /// Every request but uploads: one deadline for the whole request.
    agent: ureq::Agent,
    /// Streamed uploads: deadlines for the connection, each stall and the
    /// reply, none for the (long) transfer itself.
    upload_agent: ureq::Agent,
    /// Set by a connection whose peer stopped reading the request body.
    stop: Stop,
    settings: HttpSettings,
}

/// Pause before retry `n` (0-based): 0.5 s, 1 s, 2 s, ... at most 8 s.
fn backoff(n: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1u64 << n.min(4)))
}

fn roots(settings: &HttpSettings) -> Result<Roots> {
    if settings.insecure {
        return Ok(Roots::Insecure);
    }
    let Some(ca) = &settings.ca_file else {
        return Ok(Roots::System);
    };
    let pem = std::fs::read(ca).map_err(|e| {
        Error::usage_for(
            ca,
            format!("--os-cacert: {}", crate::error::describe_io(&e)),
        )
    })?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => {
                Some(rustls::pki_types::CertificateDer::from(c.der().to_vec()))
            }
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(Error::usage_for(
            ca,
            "--os-cacert: no PEM certificate in the file",
        ));
    }
    Ok(Roots::Bundle(certs))
}

/// The client certificate chain and key (`--os-cert`, `--os-key`).
fn client_identity(settings: &HttpSettings) -> Result<Option<certs::Identity>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let Some(cert) = &settings.cert_file else {
        return match &settings.key_file {
            Some(_) => Err(Error::Usage(
                "--os-key (OS_KEY) needs --os-cert (OS_CERT), the certificate it belongs to"
                    .to_string(),
            )),
            None => Ok(None),
        };
    };
    let read = |flag: &str, f: &str| {
        std::fs::read(f)
            .map_err(|e| Error::usage_for(f, format!("{flag}: {}", crate::error::describe_io(&e))))
    };
    let pem = read("--os-cert", cert)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(|c| c.ok())
        .collect();
    if chain.is_empty() {
        return Err(Error::usage_for(
            cert,
            "--os-cert: no PEM certificate in the file",
        ));
    }
    let (key_pem, key_path) = match &settings.key_file {
        Some(k) => (read("--os-key", k)?, k.as_str()),
        None => (pem, cert.as_str()),
    };
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        Error::usage_for(
            key_path,
            "no PEM private key in the file (give it with --os-key / OS_KEY)",
        )
    })?;
    Ok(Some((chain, key)))
}

impl Http {
    pub fn new(settings: HttpSettings) -> Result<Self> {
        let tls =
            certs::client_config(roots(&settings)?, client_identity(&settings)?).map_err(|e| {
                Error::Usage(match &settings.ca_file {
                    _ if e.starts_with("--os-cert") => e,
                    Some(ca) => format!("--os-cacert '{ca}': {e}"),
                    None => format!("TLS setup failed: {e}"),
                })
            })?;
        let t = Some(settings.timeout);
        let base = || {
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .max_redirects_will_error(false)
                .output_buffer_size(256 * 1024)
                .user_agent(concat!("diskforge/", env!("CARGO_PKG_VERSION")))
                .timeout_per_read(t)
                .timeout_per_write(t)
        };
        let stop = Stop::default();
        let agent = connect::agent(base().timeout_global(t).build(), tls.clone(), stop.clone());
        let upload_agent = connect::agent(
            base()
                .timeout_resolve(t)
                .timeout_connect(t)
                .timeout_send_request(t)
                .timeout_recv_response(t)
                .timeout_recv_body(t)
                .build(),
            tls,
            stop.clone(),
        );
        Ok(Http {
            agent,
            upload_agent,
            stop,
            settings,
        })
    }

    /// Remembers a secret so that it is scrubbed from everything.
    pub fn add_secret(&self, s: &str) {
        self.settings.secrets.add(s);
    }

    /// `text` with every known secret replaced.
    pub fn scrub(&self, text: &str) -> String {
        self.settings.secrets.scrub(text)
    }

    /// The run's secrets.
    pub fn scrubber(&self) -> &Scrubber {
        &self.settings.secrets
    }

    fn log(&self, text: &str) {
        for line in self.scrub(text).lines() {
            crate::errln!("{}: {line}", crate::cli::program_name());
        }
    }

    /// Sends `req`; any HTTP status but a redirect is a reply. A redirect
    /// is followed only for a GET within the same origin (see the module
    /// comment); any other is an error. `what` names the operation.
    pub fn send(&self, mut req: Request<'_>, what: &str) -> Result<Reply> {
        let mut hops = 0;
        loop {
            let reply = self.send_retrying(&mut req, what)?;
            if !is_redirect(reply.status) {
                return Ok(reply);
            }
            let location = reply.header("Location").map(str::to_string);
            let target = location
                .as_deref()
                .and_then(|l| resolve_location(&req.url, l));
            match target {
                Some(t)
                    if req.method == "GET"
                        && hops < MAX_REDIRECTS
                        && origin(&t).is_some()
                        && origin(&t) == origin(&req.url) =>
                {
                    if self.settings.log >= LogLevel::Requests {
                        self.log(&format!("following the redirect to {t}"));
                    }
                    req.url = t;
                    hops += 1;
                }
                _ => {
                    let to = location
                        .map(|l| format!(" (redirect to {l})"))
                        .unwrap_or_default();
                    return Err(Error::Failed(self.scrub(&format!(
                        "{what}: {} {} was answered {}{to}; not followed: diskforge follows a \
                         redirect only for a GET to the same scheme, host and port, so that \
                         the token goes nowhere else",
                        req.method,
                        req.url,
                        reply.error_line()
                    ))));
                }
            }
        }
    }

    /// Sends `req` once, and again (bounded, with backoff, announced) after
    /// a transport failure or a 5xx answer when its body can be sent again.
    fn send_retrying(&self, req: &mut Request<'_>, what: &str) -> Result<Reply> {
        let attempts = if req.replayable() {
            self.settings.retries + 1
        } else {
            1
        };
        let mut n = 0;
        loop {
            if self.settings.log >= LogLevel::Debug {
                self.log(&format!("request:\n{}", req.describe()));
            } else if self.settings.log >= LogLevel::Requests {
                self.log(&format!("{} {}", req.method, req.url));
            }
            let started = Instant::now();
            let result = self.send_once(req).map(|mut r| {
                r.attempts = n + 1;
                r
            });
            n += 1;
            let retry_reason = match &result {
                Ok(reply) if reply.status >= 500 && !req.at_most_once => Some(reply.error_line()),
                Ok(_) => None,
                Err(e) if req.at_most_once && !never_arrived(e) => None,
                Err(e) if is_transient(e) => Some(self.transport_message(e, &req.url)),
                Err(_) => None,
            };
            if let Ok(reply) = &result {
                self.log_reply(reply, started.elapsed());
            }
            match retry_reason {
                Some(reason) if n < attempts => {
                    let pause = backoff(n - 1);
                    if self.settings.announce_retries || self.settings.log >= LogLevel::Requests {
                        self.log(&format!(
                            "{what}: retrying in {:.1} s (attempt {} of {attempts}): {reason}",
                            pause.as_secs_f64(),
                            n + 1
                        ));
                    }
                    std::thread::sleep(pause);
                }
                _ => {
                    return result.map_err(|e| {
                        let cut = if self.stop.is_set() {
                            "the registry closed the connection before it had read all the \
                             data, without an answer: "
                        } else {
                            ""
                        };
                        Error::Failed(self.scrub(&format!(
                            "{what}: {} {}: {cut}{}",
                            req.method,
                            req.url,
                            self.transport_message(&e, &req.url)
                        )))
                    });
                }
            }
        }
    }

    fn log_reply(&self, reply: &Reply, took: Duration) {
        if self.settings.log < LogLevel::Requests {
            return;
        }
        let reason = http::StatusCode::from_u16(reply.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let mut s = format!(
            "reply: {} {reason} ({:.3} s)\n",
            reply.status,
            took.as_secs_f64()
        );
        if self.settings.log >= LogLevel::Debug {
            for (k, v) in &reply.headers {
                s.push_str(&format!("{k}: {}\n", redact_header(k, v)));
            }
            if !reply.body.is_empty() {
                match serde_json::from_slice::<serde_json::Value>(&reply.body) {
                    Ok(mut v) => {
                        redact_json(&mut v);
                        s.push('\n');
                        s.push_str(&serde_json::to_string_pretty(&v).unwrap_or_default());
                    }
                    Err(_) => s.push_str(&format!("\n<{} bytes>", reply.body.len())),
                }
            }
        }
        self.log(&s);
    }

    fn send_once(&self, req: &mut Request<'_>) -> std::result::Result<Reply, ureq::Error> {
        self.stop.clear();
        let mut builder = http::Request::builder()
            .method(req.method)
            .uri(req.url.as_str());
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let response = match &mut req.body {
            // An explicit empty body: ureq would otherwise send a chunked
            // one, which a v1 registry takes for image data.
            Body::None if matches!(req.method, "POST" | "PUT" | "PATCH") => self
                .agent
                .run(builder.header("Content-Length", "0").body(())?)?,
            Body::None => self.agent.run(builder.body(())?)?,
            Body::Json(v) => {
                let bytes = serde_json::to_vec(v).unwrap_or_default();
                self.agent.run(builder.body(bytes)?)?
            }
            Body::Stream { reader, len, .. } => {
                let builder = builder.header("Content-Length", len.to_string());
                let mut body = StopAware {
                    inner: &mut **reader,
                    stop: self.stop.clone(),
                    left: *len,
                };
                self.upload_agent
                    .run(builder.body(ureq::SendBody::from_reader(&mut body))?)?
            }
        };
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        // A token Keystone issues is a secret from the moment it is seen.
        for (k, v) in &headers {
            if k.eq_ignore_ascii_case("x-subject-token") {
                self.add_secret(v);
            }
        }
        // A body over the limit is still a reply: its status counts (a 201
        // made a record), and its body is no record.
        let (body, too_long) = match response
            .into_body()
            .with_config()
            .limit(MAX_REPLY_BYTES)
            .read_to_vec()
        {
            Ok(body) => (body, false),
            Err(ureq::Error::BodyExceedsLimit(_)) => (Vec::new(), true),
            Err(e) => return Err(e),
        };
        Ok(Reply {
            attempts: 1,
            cut_short: self.stop.is_set(),
            too_long,
            status,
            headers,
            body: self.settings.secrets.scrub_bytes(body),
        })
    }

    /// A transport failure in words.
    fn transport_message(&self, e: &ureq::Error, url: &str) -> String {
        match e {
            ureq::Error::Io(io) => crate::error::describe_io(io),
            ureq::Error::ConnectionFailed => "connection failed".to_string(),
            ureq::Error::HostNotFound => "host not found".to_string(),
            ureq::Error::Timeout(_) => format!(
                "no complete answer within --timeout {} s",
                self.settings.timeout.as_secs_f64()
            ),
            ureq::Error::Rustls(t) => certs::explain(t, &host_of(url)),
            other => one_line(&other.to_string()),
        }
    }
}

/// Failures worth another attempt: the connection, not the certificate.
fn is_transient(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::Timeout(_)
    )
}

/// The request surely never reached the server: no connection was made.
fn never_arrived(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::ConnectionFailed => true,
        ureq::Error::Io(io) => io.kind() == std::io::ErrorKind::ConnectionRefused,
        ureq::Error::Timeout(t) => matches!(t, ureq::Timeout::Resolve | ureq::Timeout::Connect),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_redacted_in_description() {
        let req = Request::new("POST", "http://k/v3/auth/tokens")
            .header("X-Auth-Token", "tok123")
            .json(serde_json::json!({"auth": {"password": {"user": {"password": "pw"}}}}));
        let d = req.describe();
        assert!(!d.contains("tok123") && !d.contains("\"pw\""), "{d}");
    }
}
