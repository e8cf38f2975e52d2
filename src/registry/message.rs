//! A registry's error body turned into one line: Glance's JSON
//! `{"message"}` (with its HTML), Keystone's and IMS's `{"error": ...}`,
//! the API gateway's `{"error_msg"}`, or the text of an HTML page.

/// Longest registry message kept in an error line.
const MAX_MESSAGE_CHARS: usize = 400;

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
        // An empty JSON reply says nothing.
        Ok(serde_json::Value::Null) => return None,
        Ok(serde_json::Value::Object(o)) if o.is_empty() => return None,
        Ok(serde_json::Value::Array(a)) if a.is_empty() => return None,
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
}
