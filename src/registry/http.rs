//! The one small HTTP layer every registry API goes through: a ureq agent
//! with rustls (system roots, `--os-cacert`, `--insecure`), timeouts,
//! bounded retries with backoff, logging with secrets redacted, dry runs,
//! and registry error bodies turned into one line.

use crate::error::{Error, Result};
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ureq::http;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// A secret (token or password): never shown by `Debug` or in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Secrets shorter than this are not scrubbed from text (a one-letter
/// password would mangle every line); they are still never logged, as
/// headers and JSON keys are redacted by name.
pub const MIN_SCRUBBED_SECRET: usize = 4;

/// What a secret is replaced with in anything printed.
pub const REDACTED: &str = "<redacted>";

/// Header names whose values are secrets in requests or replies.
const SECRET_HEADERS: [&str; 3] = ["x-auth-token", "x-subject-token", "authorization"];

/// JSON keys whose values are secrets (Keystone's password method).
const SECRET_KEYS: [&str; 3] = ["password", "secret", "token"];

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
    /// Connect and per-read/per-write timeout.
    pub timeout: Duration,
    /// Retries after a 5xx answer or a connection failure.
    pub retries: u32,
    pub ca_file: Option<String>,
    pub insecure: bool,
    pub log: LogLevel,
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
}

impl<'a> Request<'a> {
    pub fn new(method: &'static str, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: vec![("Accept".to_string(), "application/json".to_string())],
            body: Body::None,
        }
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
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
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
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::Failed(format!(
                "{what}: the registry's reply ({}) is not JSON: {e}",
                self.status
            ))
        })
    }

    /// The registry's message for a failed request, as one line: the
    /// status, then the message found in the body (HTML stripped).
    pub fn error_line(&self) -> String {
        let reason = http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let status = format!("{} {reason}", self.status);
        let status = status.trim_end();
        match error_message(&self.body) {
            Some(m) if !m.is_empty() => format!("{status}: {m}"),
            _ => status.to_string(),
        }
    }
}

/// Longest registry message kept in an error line.
const MAX_MESSAGE_CHARS: usize = 400;

/// Most bytes of a reply body read (records and catalogs are far smaller).
const MAX_REPLY_BYTES: u64 = 16 << 20;

/// The message in an error body: Glance's `{"message"}`, Keystone's and
/// IMS's `{"error": {"message"}}`, the API gateway's `{"error_msg"}`,
/// Nova-style `{"badRequest": {"message"}}`, or the text of an HTML page.
pub fn error_message(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let message = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => json_message(&v).unwrap_or_else(|| text.to_string()),
        Err(_) => text.to_string(),
    };
    let mut line = one_line(&strip_html(&message));
    // Glance appends the whole JSON schema to a schema violation: keep
    // the sentence that says what was wrong.
    if let Some(i) = line.find(" Failed validating ") {
        line.truncate(i);
    }
    if line.chars().count() > MAX_MESSAGE_CHARS {
        line = line.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "...";
    }
    Some(line)
}

fn json_message(v: &serde_json::Value) -> Option<String> {
    let s = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let obj = v.as_object()?;
    if let Some(m) = obj.get("message").and_then(s) {
        return Some(m);
    }
    if let Some(m) = obj.get("error_msg").and_then(s) {
        let code = obj.get("error_code").and_then(s);
        return Some(match code {
            Some(c) => format!("{m} ({c})"),
            None => m,
        });
    }
    if let Some(err) = obj.get("error") {
        if let Some(m) = s(err) {
            return Some(m);
        }
        if let Some(m) = err.get("message").and_then(s) {
            return Some(match err.get("code").and_then(s) {
                Some(c) if c.contains('.') => format!("{m} ({c})"),
                _ => m,
            });
        }
    }
    // {"badRequest": {"message": ...}} and similar one-key wrappers.
    if obj.len() == 1
        && let Some(inner) = obj.values().next()
        && let Some(m) = inner.get("message").and_then(s)
    {
        return Some(m);
    }
    obj.get("title")
        .and_then(s)
        .or_else(|| obj.get("description").and_then(s))
}

/// Text with HTML tags removed and the common entities decoded; the
/// `<title>` and `<h1>` of an error page are dropped (they only repeat
/// the status).
pub fn strip_html(s: &str) -> String {
    let mut s = s.to_string();
    for tag in ["title", "h1", "head"] {
        while let Some(start) = find_ci(&s, &format!("<{tag}")) {
            match find_ci(&s[start..], &format!("</{tag}>")) {
                Some(end) => s.replace_range(start..start + end + tag.len() + 3, " "),
                None => break,
            }
        }
    }
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    hay.to_ascii_lowercase().find(&needle.to_ascii_lowercase())
}

/// Whitespace (newlines included) collapsed to single spaces.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn redact_header(name: &str, value: &str) -> String {
    if SECRET_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        REDACTED.to_string()
    } else {
        value.to_string()
    }
}

/// Replaces the values of secret keys (`password`, ...) in a JSON tree.
pub fn redact_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if SECRET_KEYS.contains(&k.as_str()) && val.is_string() {
                    *val = serde_json::Value::String(REDACTED.to_string());
                } else {
                    redact_json(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

/// The HTTP client.
pub struct Http {
    agent: ureq::Agent,
    settings: HttpSettings,
    /// Every secret known, scrubbed from anything logged.
    secrets: std::sync::Mutex<Vec<String>>,
}

/// Pause before retry `n` (0-based): 0.5 s, 1 s, 2 s, ... at most 8 s.
fn backoff(n: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1u64 << n.min(4)))
}

impl Http {
    pub fn new(settings: HttpSettings) -> Result<Self> {
        let mut tls = TlsConfig::builder();
        if settings.insecure {
            tls = tls.disable_verification(true);
        } else if let Some(ca) = &settings.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                Error::usage_for(
                    ca,
                    format!("--os-cacert: {}", crate::error::describe_io(&e)),
                )
            })?;
            let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(Error::usage_for(
                    ca,
                    "--os-cacert: no PEM certificate in the file",
                ));
            }
            tls = tls.root_certs(RootCerts::Specific(Arc::new(certs)));
        } else {
            tls = tls.root_certs(RootCerts::PlatformVerifier);
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls.build())
            .timeout_connect(Some(settings.timeout))
            .timeout_per_read(Some(settings.timeout))
            .timeout_per_write(Some(settings.timeout))
            .max_redirects(5)
            .output_buffer_size(256 * 1024)
            .user_agent(concat!("diskforge/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Http {
            agent: config.new_agent(),
            settings,
            secrets: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Remembers a secret so that it is scrubbed from every log line.
    pub fn add_secret(&self, s: &str) {
        if s.len() < MIN_SCRUBBED_SECRET {
            return;
        }
        if let Ok(mut v) = self.secrets.lock() {
            v.push(s.to_string());
        }
    }

    /// `text` with every known secret replaced.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        if let Ok(v) = self.secrets.lock() {
            for s in v.iter() {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }

    fn log(&self, text: &str) {
        for line in self.scrub(text).lines() {
            crate::errln!("{}: {line}", crate::cli::program_name());
        }
    }

    /// Sends `req`; any HTTP status is a reply. Transport failures and 5xx
    /// answers are retried (bounded, with backoff) when the body can be
    /// sent again; `what` names the operation in errors.
    pub fn send(&self, mut req: Request<'_>, what: &str) -> Result<Reply> {
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
            let result = self.send_once(&mut req).map(|mut r| {
                r.attempts = n + 1;
                r
            });
            n += 1;
            let retry_reason = match &result {
                Ok(reply) if reply.status >= 500 => Some(reply.error_line()),
                Ok(_) => None,
                Err(e) if is_transient(e) => Some(transport_message(e)),
                Err(_) => None,
            };
            if let Ok(reply) = &result {
                self.log_reply(reply, started.elapsed());
            }
            match retry_reason {
                Some(reason) if n < attempts => {
                    let pause = backoff(n - 1);
                    if self.settings.log >= LogLevel::Requests {
                        self.log(&format!(
                            "{what}: {reason}; retrying in {:.1} s ({n}/{})",
                            pause.as_secs_f64(),
                            attempts - 1
                        ));
                    }
                    std::thread::sleep(pause);
                }
                _ => {
                    return result.map_err(|e| {
                        Error::Failed(self.scrub(&format!(
                            "{what}: {} {}: {}",
                            req.method,
                            req.url,
                            transport_message(&e)
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
                self.agent
                    .run(builder.body(ureq::SendBody::from_reader(*reader))?)?
            }
        };
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .into_body()
            .with_config()
            .limit(MAX_REPLY_BYTES)
            .read_to_vec()?;
        Ok(Reply {
            attempts: 1,
            status,
            headers,
            body,
        })
    }
}

fn is_transient(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::Timeout(_)
    )
}

fn transport_message(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => crate::error::describe_io(io),
        ureq::Error::ConnectionFailed => "connection failed".to_string(),
        ureq::Error::HostNotFound => "host not found".to_string(),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        other => one_line(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glance_message_without_html() {
        let body = br#"{"message": "Image with identifier x already exists!<br /><br />\n\n\n", "code": "409 Conflict", "title": "Conflict"}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some("Image with identifier x already exists!")
        );
    }

    #[test]
    fn ims_error_shapes() {
        let a = br#"{"error": {"code": "IMG.0024", "message": "The image name is invalid."}}"#;
        assert_eq!(
            error_message(a).as_deref(),
            Some("The image name is invalid. (IMG.0024)")
        );
        let b = br#"{"error_code": "APIGW.0301", "error_msg": "Incorrect IAM authentication information", "request_id": "r"}"#;
        assert_eq!(
            error_message(b).as_deref(),
            Some("Incorrect IAM authentication information (APIGW.0301)")
        );
    }

    #[test]
    fn keystone_error() {
        let b = br#"{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}"#;
        assert_eq!(
            error_message(b).as_deref(),
            Some("The request you have made requires authentication.")
        );
    }

    #[test]
    fn html_page() {
        let b = b"<html>\n <head>\n  <title>409 Conflict</title>\n </head>\n <body>\n  <h1>409 Conflict</h1>\n  There was a conflict.<br /><br />\n\n </body>\n</html>";
        assert_eq!(error_message(b).as_deref(), Some("There was a conflict."));
    }

    #[test]
    fn secrets_redacted_in_description() {
        let req = Request::new("POST", "http://k/v3/auth/tokens")
            .header("X-Auth-Token", "tok123")
            .json(serde_json::json!({"auth": {"password": {"user": {"password": "pw"}}}}));
        let d = req.describe();
        assert!(!d.contains("tok123") && !d.contains("\"pw\""), "{d}");
    }
}
