//! Paging that always ends: one guard per paging sequence, shared by the
//! REST connector and the vendor read loop, that stops a read whose API
//! never stops handing out next pages.
//!
//! Four ways an API can page forever, each ending the read with an error
//! (so the stream's cursor does not move past the last good checkpoint):
//! - a next page already fetched in this read (A→B→A: a cycle);
//! - `max_empty_pages` pages without records in a row, and still a next
//!   page (new links to nothing);
//! - a page with records byte-for-byte the same as the one before it (an
//!   API that ignores the offset or page parameter);
//! - more than `max_pages` pages (anything else, e.g. fresh links to the
//!   same records).
//!
//! A next link equal to the page just read is not among them: the pagers
//! take it for "last page", as some APIs mean it.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use conveyor_config::PageLimits;
use conveyor_plugin_api::{ConnectorError, ErrorKind};
use url::Url;

use super::client::HttpRequest;
use super::redact::Redactor;

/// What a guard's errors name: the source and stream, and where the
/// limits of that source are raised.
#[derive(Debug, Clone)]
pub struct PageScope {
    source: String,
    stream: String,
    /// The config table holding `max_pages` for this read.
    raise_in: String,
}

impl PageScope {
    /// A stream of a declarative REST source.
    pub fn rest(source: &str, stream: &str) -> Self {
        PageScope {
            source: source.into(),
            stream: stream.into(),
            raise_in: format!(
                "the [[sources.{source}.streams]] entry named \"{stream}\" (or its `pagination` table)"
            ),
        }
    }

    /// A stream of a vendor source (its limits are the source's).
    pub fn vendor(source: &str, stream: &str) -> Self {
        PageScope {
            source: source.into(),
            stream: stream.into(),
            raise_in: format!("[sources.{source}]"),
        }
    }
}

/// Watches the requests and pages of one paging sequence.
pub struct PageGuard {
    scope: PageScope,
    limits: PageLimits,
    redactor: Redactor,
    /// Each request sent so far (a hash of method, URL and body) and the
    /// page number it fetched.
    seen: HashMap<u64, u64>,
    pages: u64,
    empty_streak: u64,
    /// The previous page's body (a shared handle, not a copy), compared
    /// with the next one byte for byte: cheaper than hashing every page.
    last_body: Option<bytes::Bytes>,
}

impl PageGuard {
    pub fn new(scope: PageScope, limits: PageLimits, redactor: Redactor) -> Self {
        PageGuard {
            scope,
            limits,
            redactor,
            seen: HashMap::new(),
            pages: 0,
            empty_streak: 0,
            last_body: None,
        }
    }

    /// Pages fetched so far.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Before `req` is sent as the next page: an error if it would pass a
    /// limit or fetch a page this sequence already fetched.
    pub fn check(&mut self, req: &HttpRequest) -> Result<(), ConnectorError> {
        let PageLimits {
            max_pages,
            max_empty_pages,
        } = self.limits;
        if self.pages >= max_pages {
            return Err(self.fail(
                req,
                format!(
                    "read {max_pages} pages (max_pages) and the API still hands out a next page. \
                     Either the stream really is that long, or the API pages forever"
                ),
                Some(("max_pages", max_pages)),
            ));
        }
        if self.empty_streak >= max_empty_pages {
            return Err(self.fail(
                req,
                format!(
                    "the last {} pages held no records (max_empty_pages) and the API still hands \
                     out a next page: it seems to page through nothing forever",
                    self.empty_streak
                ),
                Some(("max_empty_pages", max_empty_pages)),
            ));
        }
        let key = request_key(req);
        if let Some(page) = self.seen.get(&key) {
            return Err(self.fail(
                req,
                format!(
                    "the next page is page {page} of this read again: the API's next links go \
                     round in a circle, so paging on would never end"
                ),
                None,
            ));
        }
        self.seen.insert(key, self.pages + 1);
        Ok(())
    }

    /// After the page `req` fetched came back with `records` records and
    /// `body`: an error if it repeats the page before it.
    pub fn page(
        &mut self,
        req: &HttpRequest,
        records: usize,
        body: &bytes::Bytes,
    ) -> Result<(), ConnectorError> {
        self.pages += 1;
        if records > 0 {
            self.empty_streak = 0;
            if self.last_body.replace(body.clone()).as_ref() == Some(body) {
                return Err(self.fail(
                    req,
                    format!(
                        "page {} is the same as page {}, byte for byte: the API seems to ignore \
                         the paging parameters (check the pagination settings, e.g. the offset \
                         or page parameter's name)",
                        self.pages,
                        self.pages - 1
                    ),
                    None,
                ));
            }
        } else {
            self.empty_streak += 1;
            self.last_body = None;
        }
        Ok(())
    }

    fn fail(&self, req: &HttpRequest, what: String, limit: Option<(&str, u64)>) -> ConnectorError {
        let PageScope {
            source,
            stream,
            raise_in,
        } = &self.scope;
        let remedy = match limit {
            Some((key, value)) => format!(
                "If this API legitimately needs more, raise it: `{key} = {}` in {raise_in}.",
                value.saturating_mul(10)
            ),
            None => "No limit can fix this: it is the API's (or the pagination settings') \
                     doing."
                .to_string(),
        };
        ConnectorError::new(
            ErrorKind::Data,
            format!(
                "source {source}, stream `{stream}`: paging stopped before {} {} after {} pages: \
                 {what}. The read failed instead, so the stream's cursor stays where it was. \
                 {remedy}",
                req.method,
                self.redactor.url(&req.url),
                self.pages,
            ),
        )
    }
}

/// The identity of a request: method, URL with its query sorted (the same
/// page asked with its parameters in another order is the same page), and
/// body.
fn request_key(req: &HttpRequest) -> u64 {
    let mut h = DefaultHasher::new();
    req.method.as_str().hash(&mut h);
    normalised(&req.url).hash(&mut h);
    if let Some(body) = &req.json {
        body.to_string().hash(&mut h);
    }
    h.finish()
}

fn normalised(url: &Url) -> String {
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    let mut u = url.clone();
    u.set_fragment(None);
    u.set_query(None);
    if !pairs.is_empty() {
        u.query_pairs_mut().extend_pairs(pairs);
    }
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::json;

    fn get(url: &str) -> HttpRequest {
        HttpRequest::get(Url::parse(url).unwrap())
    }

    fn guard(max_pages: u64, max_empty_pages: u64) -> PageGuard {
        let redactor = Redactor::default();
        redactor.add_secret("tok-SECRET");
        PageGuard::new(
            PageScope::rest("api", "items"),
            PageLimits {
                max_pages,
                max_empty_pages,
            },
            redactor,
        )
    }

    #[test]
    fn a_link_back_to_an_earlier_page_is_a_cycle() {
        let mut g = guard(1000, 1000);
        for (i, url) in ["http://h/i", "http://h/i?c=B", "http://h/i?c=A"]
            .iter()
            .enumerate()
        {
            g.check(&get(url)).unwrap();
            g.page(&get(url), 1, &Bytes::from(format!("page {i}")))
                .unwrap();
        }
        let e = g.check(&get("http://h/i?c=B")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Data);
        assert!(
            e.message.contains("source api, stream `items`")
                && e.message.contains("page 2 of this read again")
                && e.message.contains("GET http://h/i?c=B")
                && e.message.contains("cursor stays where it was"),
            "{e}"
        );
    }

    #[test]
    fn the_same_query_in_another_order_is_the_same_page() {
        let mut g = guard(1000, 1000);
        g.check(&get("http://h/i?a=1&b=2")).unwrap();
        g.page(&get("http://h/i?a=1&b=2"), 1, &Bytes::from_static(b"x"))
            .unwrap();
        assert!(g.check(&get("http://h/i?b=2&a=1")).is_err());
    }

    #[test]
    fn body_cursors_repeating_are_a_cycle_too() {
        let mut g = guard(1000, 1000);
        let post = |after: &str| HttpRequest {
            method: reqwest::Method::POST,
            json: Some(json!({"limit": 2, "after": after})),
            ..get("http://h/search")
        };
        for (i, after) in ["0", "2", "4"].iter().enumerate() {
            g.check(&post(after)).unwrap();
            g.page(&post(after), 2, &Bytes::from(format!("{i}")))
                .unwrap();
        }
        assert!(g.check(&post("2")).is_err());
    }

    #[test]
    fn a_streak_of_empty_pages_ends_the_read_but_a_shorter_one_does_not() {
        let mut g = guard(1000, 3);
        let page = |n: usize| get(&format!("http://h/i?c={n}"));
        // Two empty pages, then records: the streak starts over.
        for (n, records) in [0, 0, 5, 0, 0, 0].into_iter().enumerate() {
            g.check(&page(n)).unwrap();
            g.page(&page(n), records, &Bytes::from(format!("{n}")))
                .unwrap();
        }
        let e = g.check(&page(6)).unwrap_err();
        assert!(
            e.message.contains("last 3 pages held no records")
                && e.message.contains("`max_empty_pages = 30`")
                && e.message
                    .contains("[[sources.api.streams]] entry named \"items\""),
            "{e}"
        );
    }

    #[test]
    fn max_pages_is_a_hard_cap_and_says_how_to_raise_it() {
        let mut g = guard(3, 100);
        for n in 0..3 {
            let r = get(&format!("http://h/i?tok=tok-SECRET&page={n}"));
            g.check(&r).unwrap();
            g.page(&r, 1, &Bytes::from(format!("{n}"))).unwrap();
        }
        let e = g.check(&get("http://h/i?q=tok-SECRET&page=9")).unwrap_err();
        assert!(
            e.message.contains("read 3 pages (max_pages)")
                && e.message.contains("`max_pages = 30`"),
            "{e}"
        );
        assert!(!e.message.contains("tok-SECRET"), "{e}");
    }

    #[test]
    fn a_full_page_repeated_means_the_paging_parameters_are_ignored() {
        let mut g = guard(1000, 1000);
        g.page(
            &get("http://h/i?offset=0"),
            2,
            &Bytes::from_static(b"[1,2]"),
        )
        .unwrap();
        // Empty pages may repeat (their bodies are alike by nature).
        let mut g2 = guard(1000, 1000);
        g2.page(&get("http://h/i?c=1"), 0, &Bytes::from_static(b"[]"))
            .unwrap();
        g2.page(&get("http://h/i?c=2"), 0, &Bytes::from_static(b"[]"))
            .unwrap();
        let e = g
            .page(
                &get("http://h/i?offset=2"),
                2,
                &Bytes::from_static(b"[1,2]"),
            )
            .unwrap_err();
        assert!(e.message.contains("page 2 is the same as page 1"), "{e}");
    }

    #[test]
    fn vendor_errors_say_to_raise_the_limit_on_the_source() {
        let mut g = PageGuard::new(
            PageScope::vendor("ats", "candidates"),
            PageLimits {
                max_pages: 1,
                max_empty_pages: 1,
            },
            Redactor::default(),
        );
        g.check(&get("http://h/c")).unwrap();
        g.page(&get("http://h/c"), 1, &Bytes::from_static(b"1"))
            .unwrap();
        let e = g.check(&get("http://h/c?p=2")).unwrap_err();
        assert!(
            e.message.contains("`max_pages = 10` in [sources.ats]"),
            "{e}"
        );
    }
}
