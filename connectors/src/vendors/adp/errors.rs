//! ADP's error bodies in plain words: the envelope
//! `{"response":{"responseCode":…,"applicationCode":{"code":…,"typeCode":
//! "error","message":"…"}}}` [?], and the OAuth `error` fields its token
//! endpoint answers with.

use serde_json::Value;

use crate::vendors::oauth_error;

/// `message (ADP code 401, response 401)` from an error body, if it has one.
pub(super) fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let response = &v["response"];
    let app = &response["applicationCode"];
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match app["message"].as_str() {
        Some(message) => {
            let mut codes = Vec::new();
            if let Some(c) = text(&app["code"]) {
                codes.push(format!("ADP code {c}"));
            }
            if let Some(c) = text(&response["responseCode"]) {
                codes.push(format!("response {c}"));
            }
            if codes.is_empty() {
                Some(message.to_string())
            } else {
                Some(format!("{message} ({})", codes.join(", ")))
            }
        }
        None => oauth_error(&v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_and_oauth_errors_are_read() {
        let body = br#"{"response":{"responseCode":403,"methodCode":"GET","applicationCode":{"code":403,"typeCode":"error","message":"Access to the resource is forbidden"}}}"#;
        assert_eq!(
            error_message(body).unwrap(),
            "Access to the resource is forbidden (ADP code 403, response 403)"
        );
        let token =
            br#"{"error":"invalid_client","error_description":"Client authentication failed"}"#;
        assert_eq!(
            error_message(token).unwrap(),
            "invalid_client: Client authentication failed"
        );
        assert_eq!(error_message(b"<html>"), None);
        assert_eq!(error_message(br#"{"response":{}}"#), None);
    }
}
