//! The forms a secret takes on the wire — raw, percent- and form-encoded,
//! JSON- and HTML-escaped, base64 — so that whoever scrubs it (a built-in
//! connector's redactor, the host scrubbing a plugin's words) scrubs all.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;

/// The forms a secret can take on the wire: as is, percent-encoded (strict
/// and `encodeURIComponent`-style, upper- and lower-case hex),
/// form-encoded (`+` for a space), JSON- and HTML-escaped, and base64 in
/// each alphabet, padded or not.
pub fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_string()];
    out.extend(url_forms(secret));
    if let Ok(json) = serde_json::to_string(secret) {
        let inner = json[1..json.len() - 1].to_string();
        out.push(inner.replace('/', "\\/"));
        out.push(inner);
    }
    out.push(
        secret
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#39;"),
    );
    out.extend(base64_forms(secret.as_bytes()));
    dedup(out)
}

/// Percent- and form-encoded forms of `text`.
pub fn url_forms(text: &str) -> Vec<String> {
    let strict = percent_encode(text, |_| false);
    let component = percent_encode(text, |b| b"!'()*".contains(&b));
    let form: String = url::form_urlencoded::byte_serialize(text.as_bytes()).collect();
    let lower = |s: &str| lower_hex_escapes(s);
    dedup(vec![
        lower(&strict),
        lower(&component),
        lower(&form),
        strict,
        component,
        form,
    ])
}

pub fn base64_forms(bytes: &[u8]) -> Vec<String> {
    dedup(vec![
        STANDARD.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
    ])
}

/// Every byte but RFC 3986's unreserved ones (and those `keep` allows) as `%XX`.
pub fn percent_encode(text: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%2F` → `%2f`: some servers re-encode with lower-case hex.
pub fn lower_hex_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            for h in chars.by_ref().take(2) {
                out.push(h.to_ascii_lowercase());
            }
        }
    }
    out
}

pub fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
    v
}
