//! AWS error answers in words: the type from `x-amzn-ErrorType` (its
//! `:…` suffix trimmed, as restJson1 clients do), the body's `Message`,
//! and for a refused signature what to check — never the credentials.

use conveyor_plugin_api::ErrorKind;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::http::HttpResponse;

/// Error types that mean the request's credentials or signature were
/// refused, not that the account lacks a permission.
const SIGNATURE_ERRORS: &[&str] = &[
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignatureException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredTokenException",
];

/// The error type an answer names: the header, else the body's `__type`
/// (`aws.protocols#…#Name` or `Name:…`), trimmed to the bare name.
pub fn error_type(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let raw = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            let v: Value = serde_json::from_slice(body).ok()?;
            v.get("__type")?.as_str().map(str::to_string)
        })?;
    let name = raw.split(':').next().unwrap_or_default();
    let name = name.rsplit('#').next().unwrap_or_default().trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// `Type: Message`, with what to check when the signature was refused.
pub fn message(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let kind = error_type(headers, body);
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = v
        .get("Message")
        .or_else(|| v.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut s = match (&kind, text) {
        (None, None) => return None,
        (Some(k), None) => k.clone(),
        (None, Some(t)) => t,
        (Some(k), Some(t)) => format!("{k}: {t}"),
    };
    if let Some(reason) = v.get("Reason").and_then(Value::as_str) {
        s = format!("{s} (reason: {reason})");
    }
    if kind
        .as_deref()
        .is_some_and(|k| SIGNATURE_ERRORS.contains(&k))
    {
        s.push_str(
            " — AWS refused the request's signature: check that secret_access_key (and \
             session_token, for temporary credentials) belong to access_key_id and have not \
             expired, and that this machine's clock is right (AWS allows 5 minutes of skew)",
        );
    }
    Some(s)
}

/// A 403 is an auth failure when the signature or key was refused, and
/// "not available to these credentials" when a permission is missing
/// (`AccessDeniedException`); a 404 is a missing resource.
pub fn refusal_kind(resp: &HttpResponse) -> ErrorKind {
    match error_type(&resp.headers, &resp.body) {
        Some(k) if SIGNATURE_ERRORS.contains(&k.as_str()) => ErrorKind::Auth,
        _ => ErrorKind::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-amzn-errortype", t.parse().unwrap());
        h
    }

    #[test]
    fn the_error_type_comes_from_the_header_without_its_suffix() {
        let h = headers(
            "InvalidRequestException:http://internal.amazon.com/coral/com.amazonaws.connect/",
        );
        assert_eq!(
            message(&h, br#"{"Message":"StartTime is too old","Reason":"x"}"#).unwrap(),
            "InvalidRequestException: StartTime is too old (reason: x)"
        );
        let body = br#"{"__type":"aws.protocols#ThrottlingException","message":"Rate exceeded"}"#;
        assert_eq!(
            message(&HeaderMap::new(), body).unwrap(),
            "ThrottlingException: Rate exceeded"
        );
        assert_eq!(message(&HeaderMap::new(), b"<html>"), None);
    }

    #[test]
    fn a_refused_signature_says_what_to_check() {
        let m = message(&headers("InvalidSignatureException"), br#"{"Message":"The request signature we calculated does not match the signature you provided."}"#).unwrap();
        assert!(
            m.starts_with("InvalidSignatureException: The request signature")
                && m.contains("secret_access_key"),
            "{m}"
        );
        let m = message(
            &headers("AccessDeniedException"),
            br#"{"Message":"not authorized"}"#,
        )
        .unwrap();
        assert!(!m.contains("secret_access_key"), "{m}");
    }
}
