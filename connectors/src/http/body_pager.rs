//! Paging for query APIs that take the page in a JSON request body: a
//! cursor the response hands back (`POST …/search` with `"after": "…"`), or
//! a page number counted up until a short page (`"paging": {"pageNumber":
//! n}`); the URL-based styles live in `rest::pager`.

use conveyor_config::JsonPath;
use reqwest::Method;
use serde_json::Value;
use url::Url;

use super::client::HttpRequest;

pub struct BodyPager {
    url: Url,
    body: Value,
    style: Style,
    next: Option<String>,
    started: bool,
}

enum Style {
    Cursor {
        /// Where the next cursor sits in a response (`paging.next.after`).
        cursor_path: JsonPath,
        /// The request-body field that carries it (`after`).
        cursor_field: String,
    },
    PageNumber {
        /// The request-body field holding the page number (`paging.pageNumber`).
        page_path: JsonPath,
        size: u64,
    },
}

impl BodyPager {
    pub fn new(url: Url, body: Value, cursor_path: &str, cursor_field: &str) -> Self {
        let style = Style::Cursor {
            cursor_path: JsonPath::parse(cursor_path),
            cursor_field: cursor_field.into(),
        };
        BodyPager {
            url,
            body,
            style,
            next: None,
            started: false,
        }
    }

    /// Pages numbered from 1 in `page_path` of the body; a page with fewer
    /// than `size` records is the last.
    pub fn page_number(url: Url, body: Value, page_path: &str, size: u64) -> Self {
        let style = Style::PageNumber {
            page_path: JsonPath::parse(page_path),
            size,
        };
        BodyPager {
            url,
            body,
            style,
            next: Some("1".into()),
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
        match (&self.style, &self.next) {
            (Style::Cursor { cursor_field, .. }, Some(c)) => {
                if let Some(obj) = body.as_object_mut() {
                    obj.insert(cursor_field.clone(), Value::String(c.clone()));
                }
            }
            (Style::PageNumber { page_path, .. }, Some(n)) => {
                set(
                    &mut body,
                    &page_path.0,
                    Value::from(n.parse::<u64>().unwrap_or(1)),
                );
            }
            _ => {}
        }
        Some(HttpRequest {
            method: Method::POST,
            url: self.url.clone(),
            headers: Vec::new(),
            json: Some(body),
        })
    }

    /// Reads where the next page starts from the page just fetched.
    pub fn advance(&mut self, response: &Value, records: usize) {
        match &self.style {
            Style::Cursor { cursor_path, .. } => {
                let mut at = response;
                for p in &cursor_path.0 {
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
            Style::PageNumber { size, .. } => {
                let page = self
                    .next
                    .as_deref()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(1);
                self.next = (records as u64 >= *size).then(|| (page + 1).to_string());
            }
        }
    }

    /// The cursor the next request will send.
    pub fn cursor(&self) -> Option<&str> {
        self.next.as_deref()
    }
}

/// Sets `path` in `body`, creating objects on the way.
fn set(body: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = body;
    for p in parents {
        if !at.get(p).is_some_and(Value::is_object) {
            if let Some(o) = at.as_object_mut() {
                o.insert(p.clone(), Value::Object(Default::default()));
            }
        }
        match at.get_mut(p) {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(o) = at.as_object_mut() {
        o.insert(last.clone(), value);
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
        p.advance(
            &json!({"results": [], "paging": {"next": {"after": "2"}}}),
            2,
        );
        let r = p.next_request().unwrap();
        assert_eq!(
            (r.method, r.json),
            (Method::POST, Some(json!({"limit": 2, "after": "2"})))
        );
        p.advance(&json!({"results": []}), 0);
        assert!(p.next_request().is_none());
    }

    #[test]
    fn page_numbers_count_up_in_the_body_until_a_short_page() {
        let body = json!({"interval": "x", "paging": {"pageSize": 2}});
        let mut p = BodyPager::page_number(
            Url::parse("http://h/q").unwrap(),
            body,
            "paging.pageNumber",
            2,
        );
        assert_eq!(
            p.next_request().unwrap().json.unwrap()["paging"],
            json!({"pageSize": 2, "pageNumber": 1})
        );
        p.advance(&json!({}), 2);
        assert_eq!(
            p.next_request().unwrap().json.unwrap()["paging"]["pageNumber"],
            2
        );
        p.advance(&json!({}), 1);
        assert!(p.next_request().is_none());
    }
}
