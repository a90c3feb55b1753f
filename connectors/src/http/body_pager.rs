//! Paging for search APIs that take the page cursor in a JSON request body
//! (`POST …/search` with `"after": "…"`) and return the next one in the
//! response body; the URL-based styles live in `rest::pager`.

use conveyor_config::JsonPath;
use reqwest::Method;
use serde_json::Value;
use url::Url;

use super::client::HttpRequest;

pub struct BodyPager {
    url: Url,
    body: Value,
    /// Where the next cursor sits in a response (`paging.next.after`).
    cursor_path: JsonPath,
    /// The request-body field that carries it (`after`).
    cursor_field: String,
    next: Option<String>,
    started: bool,
}

impl BodyPager {
    pub fn new(url: Url, body: Value, cursor_path: &str, cursor_field: &str) -> Self {
        BodyPager {
            url,
            body,
            cursor_path: JsonPath::parse(cursor_path),
            cursor_field: cursor_field.into(),
            next: None,
            started: false,
        }
    }

    /// The next page's request, or `None` when the last response had no cursor.
    pub fn next_request(&mut self) -> Option<HttpRequest> {
        if self.started && self.next.is_none() {
            return None;
        }
        self.started = true;
        let mut body = self.body.clone();
        if let (Some(c), Some(obj)) = (&self.next, body.as_object_mut()) {
            obj.insert(self.cursor_field.clone(), Value::String(c.clone()));
        }
        Some(HttpRequest {
            method: Method::POST,
            url: self.url.clone(),
            headers: Vec::new(),
            json: Some(body),
        })
    }

    /// Reads the next cursor from the page just fetched.
    pub fn advance(&mut self, response: &Value) {
        let mut at = response;
        for p in &self.cursor_path.0 {
            match at.get(p) {
                Some(v) => at = v,
                None => {
                    self.next = None;
                    return;
                }
            }
        }
        let next = match at {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        // A cursor that does not move would loop forever.
        self.next = next.filter(|n| Some(n) != self.next.as_ref());
    }

    /// The cursor the next request will send.
    pub fn cursor(&self) -> Option<&str> {
        self.next.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_cursor_travels_in_the_body_until_the_response_has_none() {
        let mut p = BodyPager::new(
            Url::parse("http://h/search").unwrap(),
            json!({"limit": 2}),
            "paging.next.after",
            "after",
        );
        assert_eq!(p.next_request().unwrap().json, Some(json!({"limit": 2})));
        p.advance(&json!({"results": [], "paging": {"next": {"after": "2"}}}));
        let r = p.next_request().unwrap();
        assert_eq!(
            (r.method, r.json),
            (Method::POST, Some(json!({"limit": 2, "after": "2"})))
        );
        p.advance(&json!({"results": []}));
        assert!(p.next_request().is_none());
    }
}
