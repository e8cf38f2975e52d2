//! Secrets (tokens, passwords, application-credential secrets) and their
//! scrubbing: every secret known to a run — given on the command line, in
//! the environment or clouds.yaml, or issued by Keystone during the run —
//! is replaced by `<redacted>` in everything diskforge prints: error
//! lines, printed records, notes and `-v`/`--debug` logs. Reply bodies are
//! scrubbed as they arrive, before anything is cut or parsed out of them,
//! so that a registry that echoes a token back cannot make it printed.

use std::sync::{Arc, Mutex};

/// What a secret is replaced with in anything printed.
pub const REDACTED: &str = "<redacted>";

/// Secrets shorter than this are not scrubbed from text (a one-letter
/// password would mangle every line); they are still never logged, as
/// headers and JSON keys are redacted by name.
pub const MIN_SCRUBBED_SECRET: usize = 4;

/// Header names whose values are secrets in requests or replies.
pub const SECRET_HEADERS: [&str; 7] = [
    "x-auth-token",
    "x-subject-token",
    "x-service-token",
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// JSON keys whose values are secrets (Keystone's password and
/// application-credential methods, token bodies).
const SECRET_KEYS: [&str; 4] = [
    "password",
    "secret",
    "token",
    "application_credential_secret",
];

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

/// The secrets of one run, shared by the HTTP layer (which learns the
/// tokens Keystone issues) and the code that prints.
#[derive(Clone, Default)]
pub struct Scrubber(Arc<Mutex<Vec<String>>>);

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrubber(<redacted>)")
    }
}

/// The spellings of `s` that may appear in a reply or a message: as is,
/// escaped inside a JSON string, and escaped in HTML.
fn spellings(s: &str) -> Vec<String> {
    let mut v = vec![s.to_string()];
    let json = serde_json::to_string(s).unwrap_or_default();
    let json = json.trim_matches('"').to_string();
    let html = s
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    let slash = json.replace('/', "\\/");
    for x in [json, html, slash] {
        if !v.contains(&x) {
            v.push(x);
        }
    }
    v
}

impl Scrubber {
    /// Remembers a secret (all its spellings).
    pub fn add(&self, secret: &str) {
        if secret.len() < MIN_SCRUBBED_SECRET {
            return;
        }
        if let Ok(mut v) = self.0.lock() {
            for s in spellings(secret) {
                if !v.contains(&s) {
                    v.push(s);
                }
            }
            // Longest first: a secret that contains another is replaced whole.
            v.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    fn list(&self) -> Vec<String> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// `text` with every known secret replaced.
    pub fn scrub(&self, text: &str) -> String {
        self.list()
            .iter()
            .fold(text.to_string(), |acc, s| acc.replace(s.as_str(), REDACTED))
    }

    /// `bytes` (a reply body, maybe not UTF-8) with every known secret
    /// replaced.
    pub fn scrub_bytes(&self, bytes: Vec<u8>) -> Vec<u8> {
        let mut out = bytes;
        for s in self.list() {
            let s = s.as_bytes();
            if out.windows(s.len()).all(|w| w != s) {
                continue;
            }
            let mut next = Vec::with_capacity(out.len());
            let mut i = 0;
            while i < out.len() {
                if out[i..].starts_with(s) {
                    next.extend_from_slice(REDACTED.as_bytes());
                    i += s.len();
                } else {
                    next.push(out[i]);
                    i += 1;
                }
            }
            out = next;
        }
        out
    }

    /// A JSON value with every string (and key) scrubbed and the values
    /// of secret keys redacted: what a printed record goes through.
    pub fn scrub_json(&self, v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(s) => Value::String(self.scrub(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.scrub_json(x)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| {
                        let x = if SECRET_KEYS.contains(&k.as_str()) && x.is_string() {
                            Value::String(REDACTED.to_string())
                        } else {
                            self.scrub_json(x)
                        };
                        (self.scrub(k), x)
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// A header value as it may be shown: secrets by name redacted.
pub fn redact_header(name: &str, value: &str) -> String {
    if SECRET_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        REDACTED.to_string()
    } else {
        value.to_string()
    }
}

/// Replaces the values of secret keys (`password`, ...) in a JSON tree,
/// and the id of a token given to Keystone (`"token": {"id": ...}`).
pub fn redact_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if SECRET_KEYS.contains(&k.as_str()) && val.is_string() {
                    *val = serde_json::Value::String(REDACTED.to_string());
                } else {
                    if k == "token"
                        && let Some(id) = val.get_mut("id")
                        && id.is_string()
                    {
                        *id = serde_json::Value::String(REDACTED.to_string());
                    }
                    redact_json(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_is_scrubbed() {
        let s = Scrubber::default();
        s.add("tok/en\"<x>");
        s.add("ab");
        let cases = [
            ("plain", "a tok/en\"<x> b", "a <redacted> b"),
            ("json", r#"{"m": "tok\/en\"<x>"}"#, r#"{"m": "<redacted>"}"#),
            ("json2", r#"{"m": "tok/en\"<x>"}"#, r#"{"m": "<redacted>"}"#),
            ("html", "tok/en&quot;&lt;x&gt;", "<redacted>"),
            ("short secrets stay", "ab", "ab"),
        ];
        for (name, input, want) in cases {
            assert_eq!(s.scrub(input), want, "{name}");
            assert_eq!(
                s.scrub_bytes(input.as_bytes().to_vec()),
                want.as_bytes(),
                "{name} (bytes)"
            );
        }
    }

    #[test]
    fn keystone_bodies_are_redacted() {
        let mut v = serde_json::json!({"auth": {"identity": {"methods": ["token"],
            "token": {"id": "tok-given"}, "password": {"user": {"password": "pw"}}}}});
        redact_json(&mut v);
        let t = v.to_string();
        assert!(!t.contains("tok-given") && !t.contains("\"pw\""), "{t}");
    }

    #[test]
    fn records_are_scrubbed() {
        let s = Scrubber::default();
        s.add("gAAAAAtoken");
        let rec = serde_json::json!({"name": "x gAAAAAtoken", "secret": "zz",
            "tags": ["gAAAAAtoken"], "gAAAAAtoken": 1});
        let out = s.scrub_json(&rec).to_string();
        assert!(!out.contains("gAAAAAtoken") && !out.contains("zz"), "{out}");
    }
}
