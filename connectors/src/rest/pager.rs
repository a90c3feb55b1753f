//! Pagination: which URL to fetch next, for each paging style.

use conveyor_config::{JsonPath, PaginationConfig};
use serde_json::Value;
use url::Url;

use super::select::select;
use crate::http::HttpResponse;

/// Builds page requests for one stream read.
pub struct Pager {
    cfg: PaginationConfig,
    /// The stream's URL without query parameters.
    base: Url,
    /// Configured parameters, with `{cursor}` already substituted.
    params: Vec<(String, String)>,
    /// Parameters added to the first request only (incremental filter for
    /// APIs whose next links must be followed exactly).
    first_only: Vec<(String, String)>,
    page_index: u64,
    next: Option<Url>,
    started: bool,
    /// Where page-numbered bodies say how many pages there are (Xero's
    /// `pagination.pageCount`), like `total_pages_header` for headers.
    total_pages_path: Option<JsonPath>,
    /// Offset paging that ends only on an empty page, its offset moved by
    /// the records received (see [`Pager::until_empty_page`]).
    until_empty: bool,
    /// Records received so far, for that offset.
    received: u64,
}

impl Pager {
    pub fn new(
        cfg: PaginationConfig,
        base: Url,
        params: Vec<(String, String)>,
        filter: Vec<(String, String)>,
    ) -> Self {
        // Follow-the-link styles carry the filter inside the links they hand
        // back; offset, page and cursor-token styles must repeat it.
        let (params, first_only) = match cfg {
            PaginationConfig::LinkHeader | PaginationConfig::NextUrl { .. } => (params, filter),
            _ => ([params, filter].concat(), Vec::new()),
        };
        Pager {
            cfg,
            base,
            params,
            first_only,
            page_index: 0,
            next: None,
            started: false,
            total_pages_path: None,
            until_empty: false,
            received: 0,
        }
    }

    /// Offset paging for an API that may cap the page below the limit
    /// asked for and signals the end otherwise (ADP's 204): a short page
    /// is not the end, only an empty one (or the caller's own end signal)
    /// is, and the next offset is the records received so far, so a
    /// capped page skips nothing. No effect on other paging styles.
    pub fn until_empty_page(mut self) -> Self {
        self.until_empty = true;
        self
    }

    /// The offset of the next page of offset paging.
    fn offset(&self, limit: u64, start_offset: u64) -> u64 {
        if self.until_empty {
            start_offset + self.received
        } else {
            start_offset + self.page_index * limit
        }
    }

    /// Page-number paging also ends after the page count found at `path`
    /// in the body.
    pub fn with_total_pages_at(mut self, path: JsonPath) -> Self {
        self.total_pages_path = Some(path);
        self
    }

    /// The next URL to fetch, or `None` when the stream is exhausted.
    pub fn next_url(&mut self) -> Option<Url> {
        if !self.started {
            self.started = true;
            let mut extra = self.first_only.clone();
            extra.extend(self.paging_params());
            return Some(self.with_params(&extra));
        }
        match &self.cfg {
            PaginationConfig::OffsetLimit { .. } | PaginationConfig::PageNumber { .. } => {
                if self.next.is_some() {
                    let p = self.paging_params();
                    Some(self.with_params(&p))
                } else {
                    None
                }
            }
            _ => self.next.clone(),
        }
    }

    /// Reads the paging information of the page just fetched.
    pub fn advance(&mut self, resp: &HttpResponse, body: &Value, records: usize) {
        let current = resp.url.clone();
        self.next = match &self.cfg {
            PaginationConfig::None => None,
            PaginationConfig::LinkHeader => link_next(resp),
            PaginationConfig::NextUrl {
                next_path,
                count_path,
                min_count,
            } => {
                let below = count_path
                    .as_ref()
                    .and_then(|p| select(body, p).and_then(Value::as_u64))
                    .is_some_and(|c| c < *min_count);
                // An empty page is not the end: some APIs filter each page
                // after slicing it, so later pages may still hold records.
                if below {
                    None
                } else {
                    string_at(body, next_path).and_then(|n| current.join(&n).ok())
                }
            }
            PaginationConfig::CursorToken {
                cursor_path,
                cursor_param,
            } => string_at(body, cursor_path).map(|token| {
                let mut ps = self.params.clone();
                ps.push((cursor_param.clone(), token));
                self.with_params_list(&ps)
            }),
            PaginationConfig::OffsetLimit { .. } if self.until_empty => {
                self.page_index += 1;
                self.received += records as u64;
                (records > 0).then(|| current.clone())
            }
            PaginationConfig::OffsetLimit { limit, .. } => {
                self.page_index += 1;
                (records as u64 >= *limit).then(|| current.clone())
            }
            PaginationConfig::PageNumber {
                size,
                total_pages_header,
                ..
            } => {
                self.page_index += 1;
                let total = total_pages_header
                    .as_ref()
                    .and_then(|h| resp.headers.get(h.as_str()))
                    .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                    .or_else(|| {
                        let p = self.total_pages_path.as_ref()?;
                        select(body, p).and_then(Value::as_u64)
                    });
                let past_total = total.is_some_and(|t| self.page_index >= t);
                (records as u64 >= *size && !past_total).then(|| current.clone())
            }
        };
        // A next link equal to the page just read would loop forever.
        if self.next.as_ref() == Some(&current)
            && !matches!(
                self.cfg,
                PaginationConfig::OffsetLimit { .. } | PaginationConfig::PageNumber { .. }
            )
        {
            self.next = None;
        }
    }

    /// The page size the configured parameters ask for, for `{limit}`.
    fn paging_params(&self) -> Vec<(String, String)> {
        match &self.cfg {
            PaginationConfig::OffsetLimit {
                offset_param,
                limit_param,
                limit,
                start_offset,
            } => {
                let offset = self.offset(*limit, *start_offset);
                [(offset_param, offset), (limit_param, *limit)]
                    .into_iter()
                    .filter(|(name, _)| !name.is_empty())
                    .map(|(n, v)| (n.clone(), v.to_string()))
                    .collect()
            }
            PaginationConfig::PageNumber {
                page_param,
                size_param,
                size,
                start_page,
                ..
            } => {
                let page = start_page + self.page_index;
                [(page_param, page), (size_param, *size)]
                    .into_iter()
                    .filter(|(name, _)| !name.is_empty())
                    .map(|(n, v)| (n.clone(), v.to_string()))
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    fn placeholders(&self) -> [(&'static str, String); 3] {
        let (offset, limit, page) = match &self.cfg {
            PaginationConfig::OffsetLimit {
                limit,
                start_offset,
                ..
            } => (
                self.offset(*limit, *start_offset),
                *limit,
                self.page_index + 1,
            ),
            PaginationConfig::PageNumber {
                size, start_page, ..
            } => (self.page_index * size, *size, start_page + self.page_index),
            _ => (0, 0, self.page_index + 1),
        };
        [
            ("{offset}", offset.to_string()),
            ("{limit}", limit.to_string()),
            ("{page}", page.to_string()),
        ]
    }

    fn with_params(&self, extra: &[(String, String)]) -> Url {
        let all: Vec<(String, String)> = self.params.iter().chain(extra.iter()).cloned().collect();
        self.with_params_list(&all)
    }

    fn with_params_list(&self, params: &[(String, String)]) -> Url {
        let ph = self.placeholders();
        let mut url = self.base.clone();
        if !params.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                let mut v = v.clone();
                for (name, value) in &ph {
                    if v.contains(name) {
                        v = v.replace(name, value);
                    }
                }
                q.append_pair(k, &v);
            }
        }
        url
    }
}

fn string_at(body: &Value, path: &JsonPath) -> Option<String> {
    match select(body, path)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `rel="next"` target of a `Link` header.
fn link_next(resp: &HttpResponse) -> Option<Url> {
    for value in resp.headers.get_all(reqwest::header::LINK) {
        let Ok(text) = value.to_str() else { continue };
        for part in text.split(',') {
            let mut pieces = part.split(';');
            let target = pieces.next()?.trim();
            let is_next = pieces.any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                let inner = target.trim_start_matches('<').trim_end_matches('>');
                return resp.url.join(inner).ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;

    fn resp(url: &str, link: Option<&str>) -> HttpResponse {
        let mut headers = HeaderMap::new();
        if let Some(l) = link {
            headers.insert("link", l.parse().unwrap());
        }
        HttpResponse {
            url: Url::parse(url).unwrap(),
            status: reqwest::StatusCode::OK,
            headers,
            body: Default::default(),
        }
    }

    #[test]
    fn link_header_is_followed_exactly_and_filter_sent_once() {
        let base = Url::parse("http://h/v3/jobs").unwrap();
        let mut p = Pager::new(
            PaginationConfig::LinkHeader,
            base,
            vec![("per_page".into(), "2".into())],
            vec![("updated_at".into(), "gte|X".into())],
        );
        assert_eq!(
            p.next_url().unwrap().as_str(),
            "http://h/v3/jobs?per_page=2&updated_at=gte%7CX"
        );
        p.advance(
            &resp(
                "http://h/v3/jobs?per_page=2",
                Some(r#"<http://h/v3/jobs?cursor=abc>; rel="next""#),
            ),
            &Value::Null,
            2,
        );
        assert_eq!(
            p.next_url().unwrap().as_str(),
            "http://h/v3/jobs?cursor=abc"
        );
        p.advance(&resp("http://h/v3/jobs?cursor=abc", None), &Value::Null, 1);
        assert!(p.next_url().is_none());
    }

    #[test]
    fn offset_pages_substitute_placeholders_and_stop_short() {
        let cfg = PaginationConfig::OffsetLimit {
            offset_param: String::new(),
            limit_param: String::new(),
            limit: 2,
            start_offset: 1,
        };
        let base = Url::parse("http://h/query").unwrap();
        let mut p = Pager::new(
            cfg,
            base,
            vec![(
                "query".into(),
                "select * from Invoice STARTPOSITION {offset} MAXRESULTS {limit}".into(),
            )],
            vec![],
        );
        let u1 = p.next_url().unwrap();
        assert!(
            u1.as_str().ends_with("STARTPOSITION+1+MAXRESULTS+2"),
            "{u1}"
        );
        p.advance(&resp(u1.as_str(), None), &Value::Null, 2);
        let u2 = p.next_url().unwrap();
        assert!(
            u2.as_str().ends_with("STARTPOSITION+3+MAXRESULTS+2"),
            "{u2}"
        );
        p.advance(&resp(u2.as_str(), None), &Value::Null, 1);
        assert!(p.next_url().is_none());
    }

    #[test]
    fn offset_pages_until_empty_go_past_a_short_page_by_the_records_received() {
        let cfg = PaginationConfig::OffsetLimit {
            offset_param: "$skip".into(),
            limit_param: "$top".into(),
            limit: 100,
            start_offset: 0,
        };
        let base = Url::parse("http://h/hr/v2/workers").unwrap();
        let mut p = Pager::new(cfg, base, vec![], vec![]).until_empty_page();
        let u1 = p.next_url().unwrap();
        assert_eq!(u1.as_str(), "http://h/hr/v2/workers?%24skip=0&%24top=100");
        // The server capped the page at 40: the next one starts at 40.
        p.advance(&resp(u1.as_str(), None), &Value::Null, 40);
        let u2 = p.next_url().unwrap();
        assert_eq!(u2.as_str(), "http://h/hr/v2/workers?%24skip=40&%24top=100");
        p.advance(&resp(u2.as_str(), None), &Value::Null, 40);
        assert!(p.next_url().unwrap().as_str().contains("%24skip=80"));
        p.advance(&resp(u2.as_str(), None), &Value::Null, 0);
        assert!(p.next_url().is_none(), "an empty page ends it");
    }

    #[test]
    fn next_url_stops_on_low_count_even_if_link_present() {
        let cfg = PaginationConfig::NextUrl {
            next_path: JsonPath::parse("next_page"),
            count_path: Some(JsonPath::parse("count")),
            min_count: 1,
        };
        let mut p = Pager::new(cfg, Url::parse("http://h/calls").unwrap(), vec![], vec![]);
        p.next_url();
        let body = serde_json::json!({"next_page": "/calls?start_time=5", "count": 3});
        p.advance(&resp("http://h/calls", None), &body, 3);
        assert_eq!(
            p.next_url().unwrap().as_str(),
            "http://h/calls?start_time=5"
        );
        let body = serde_json::json!({"next_page": "/calls?start_time=9", "count": 0});
        p.advance(&resp("http://h/calls?start_time=5", None), &body, 0);
        assert!(p.next_url().is_none());
    }

    #[test]
    fn page_numbers_stop_at_the_page_count_in_the_body() {
        let cfg = PaginationConfig::PageNumber {
            page_param: "page".into(),
            size_param: "pageSize".into(),
            size: 2,
            start_page: 1,
            total_pages_header: None,
        };
        let mut p = Pager::new(
            cfg,
            Url::parse("http://h/Invoices").unwrap(),
            vec![],
            vec![],
        )
        .with_total_pages_at(JsonPath::parse("pagination.pageCount"));
        let body = serde_json::json!({"pagination": {"pageCount": 2}});
        let u1 = p.next_url().unwrap();
        assert_eq!(u1.as_str(), "http://h/Invoices?page=1&pageSize=2");
        p.advance(&resp(u1.as_str(), None), &body, 2);
        let u2 = p.next_url().unwrap();
        assert_eq!(u2.as_str(), "http://h/Invoices?page=2&pageSize=2");
        // A full page, but the last one the body counts.
        p.advance(&resp(u2.as_str(), None), &body, 2);
        assert!(p.next_url().is_none());
    }
}
