//! URLs as the HTTP layer needs them: which statuses redirect, a URL's
//! origin (scheme, host, port) to keep credentials on it, and where a
//! `Location` header leads.

use ureq::http;

/// True for the statuses that redirect (300 is a choice, not a redirect).
pub(super) fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// (scheme, host, port) of an absolute URL, lowercased, default ports
/// filled in.
pub(super) fn origin(url: &str) -> Option<(String, String, u16)> {
    let uri: http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let host = uri.host()?.to_ascii_lowercase();
    let port = uri.port_u16().or(match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    })?;
    Some((scheme, host, port))
}

/// The host (and port) of a URL, for messages.
pub(super) fn host_of(url: &str) -> String {
    url.parse::<http::Uri>()
        .ok()
        .and_then(|u| u.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| url.to_string())
}

/// The absolute URL a `Location` names, relative to `base`.
pub(super) fn resolve_location(base: &str, location: &str) -> Option<String> {
    let location = location.trim();
    let location = location.split('#').next().unwrap_or_default();
    if location.contains("://") {
        return Some(location.to_string());
    }
    let uri: http::Uri = base.parse().ok()?;
    let scheme = uri.scheme_str()?;
    let authority = uri.authority()?.as_str();
    if let Some(rest) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{rest}"));
    }
    if location.starts_with('/') {
        return Some(format!("{scheme}://{authority}{location}"));
    }
    let path = uri.path();
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    Some(format!("{scheme}://{authority}{dir}{location}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let cases = [
            ("http://a:80/x", "http://A/y", true),
            ("https://a/x", "https://a:443/", true),
            ("https://a/x", "http://a/x", false),
            ("http://a/x", "http://a:8080/x", false),
            ("http://a/x", "http://b/x", false),
            (
                "http://127.0.0.1:9292/v2",
                "http://localhost:9292/v2",
                false,
            ),
        ];
        for (a, b, same) in cases {
            assert_eq!(origin(a) == origin(b), same, "{a} {b}");
        }
    }

    #[test]
    fn locations() {
        let base = "http://g:9292/v2/images/abc";
        let cases = [
            ("/v2/images/def", "http://g:9292/v2/images/def"),
            ("def", "http://g:9292/v2/images/def"),
            ("//h/x", "http://h/x"),
            ("https://h:1/x#frag", "https://h:1/x"),
        ];
        for (loc, want) in cases {
            assert_eq!(resolve_location(base, loc).as_deref(), Some(want), "{loc}");
        }
    }
}
