//! Validates a REST source's raw table into [`RestSourceConfig`]: base URL,
//! auth, pagination, HTTP settings and streams.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::model::*;
use super::raw::*;
use super::tagged::Tagged;
use crate::http::HttpKeys;
use crate::validate::Checker;

impl Checker<'_> {
    pub(crate) fn rest_source(&mut self, key: &str, raw: &RawSource) -> Option<RestSourceConfig> {
        self.unused(
            key,
            "rest",
            &[
                ("options", raw.options.as_ref().map(|o| o.span())),
                ("isolation", raw.isolation.as_ref().map(|o| o.span())),
                ("memory_limit", raw.memory_limit.as_ref().map(|o| o.span())),
                (
                    "secrets",
                    raw.secrets
                        .as_ref()
                        .and_then(|s| s.values().next())
                        .map(|v| v.span()),
                ),
            ],
        );
        let base_url = match &raw.base_url {
            None => {
                self.error(
                    raw.kind.span(),
                    &format!("{key}.base_url"),
                    "missing key `base_url` (required by type = \"rest\")",
                );
                None
            }
            Some(u) => self.url(u, &format!("{key}.base_url")),
        };
        let auth = match &raw.auth {
            None => Some(AuthConfig::None),
            Some(a) => self.auth(&format!("{key}.auth"), a),
        };
        // The source's page limits are every stream's unless it sets its own.
        let (pagination, source_limits) = match &raw.pagination {
            None => (Some(PaginationConfig::None), [None, None]),
            Some(p) => self.pagination(&format!("{key}.pagination"), p),
        };
        let http = self.http_settings(
            key,
            HttpKeys {
                timeout_secs: &raw.timeout_secs,
                max_retries: &raw.max_retries,
                backoff_base_ms: &raw.backoff_base_ms,
                backoff_max_secs: &raw.backoff_max_secs,
                requests_per_second: &raw.requests_per_second,
                prefetch_pages: raw.prefetch_pages.as_ref(),
            },
        );
        let mut headers = Vec::new();
        for (k, v) in raw.headers.iter().flatten() {
            headers.push((k.clone(), v.get_ref().clone()));
        }
        let mut streams = Vec::new();
        match &raw.streams {
            None => {
                self.error(
                    raw.kind.span(),
                    &format!("{key}.streams"),
                    "a rest source needs at least one [[...streams]] entry",
                );
            }
            Some(list) => {
                let mut seen = std::collections::HashSet::new();
                for (i, s) in list.iter().enumerate() {
                    let skey = format!("{key}.streams[{i}]");
                    if !seen.insert(s.get_ref().name.get_ref().clone()) {
                        self.error(
                            s.get_ref().name.span(),
                            &format!("{skey}.name"),
                            format!("duplicate stream name `{}`", s.get_ref().name.get_ref()),
                        );
                    }
                    if let Some(stream) = self.rest_stream(&skey, s.get_ref(), source_limits) {
                        streams.push(stream);
                    }
                }
            }
        }
        Some(RestSourceConfig {
            base_url: base_url?,
            auth: auth?,
            headers,
            pagination: pagination?,
            http: http?,
            streams,
        })
    }

    fn required<'r, T>(
        &mut self,
        v: &'r Option<Spanned<T>>,
        key: &str,
        field: &str,
        kind: &str,
        at: Range<usize>,
    ) -> Option<&'r Spanned<T>> {
        if v.is_none() {
            self.error(
                at,
                &format!("{key}.{field}"),
                format!("missing key `{field}` (required by type = \"{kind}\")"),
            );
        }
        v.as_ref()
    }

    fn auth(&mut self, key: &str, a: &Spanned<Tagged>) -> Option<AuthConfig> {
        let at = a.span();
        let (raw, kind) = self.tagged::<RawAuth>(key, a, "auth")?;
        let kind = kind.as_str();
        let t = a.get_ref();
        match raw {
            RawAuth::None(NoAuth {}) => Some(AuthConfig::None),
            RawAuth::ApiKey(k) => {
                let location = match (&k.header, &k.query_param) {
                    (Some(h), None) => KeyLocation::Header(h.clone()),
                    (None, Some(q)) => KeyLocation::Query(q.clone()),
                    _ => {
                        self.error(
                            at.clone(),
                            key,
                            "api_key auth needs exactly one of `header` or `query_param`",
                        )
                        .hint("e.g. header = \"X-API-Key\"");
                        return None;
                    }
                };
                let value = t.spanned("key", &k.key);
                let v = self.required(&value, key, "key", kind, at)?;
                let key_ref = self.secret(v, &format!("{key}.key"))?;
                Some(AuthConfig::ApiKey {
                    location,
                    key: key_ref,
                })
            }
            RawAuth::Basic(b) => {
                let (username, password) = (
                    t.spanned("username", &b.username),
                    t.spanned("password", &b.password),
                );
                let u = self.required(&username, key, "username", kind, at.clone());
                let p = self.required(&password, key, "password", kind, at);
                let password = self.secret(p?, &format!("{key}.password"))?;
                Some(AuthConfig::Basic {
                    username: u?.get_ref().clone(),
                    password,
                })
            }
            RawAuth::Bearer(b) => {
                let token = t.spanned("token", &b.token);
                let v = self.required(&token, key, "token", kind, at)?;
                Some(AuthConfig::Bearer {
                    token: self.secret(v, &format!("{key}.token"))?,
                })
            }
            RawAuth::OAuth2ClientCredentials(c) => {
                let (token_url, client_id, client_secret) = self.oauth2_client(
                    key,
                    kind,
                    at,
                    t,
                    &c.token_url,
                    &c.client_id,
                    &c.client_secret,
                );
                Some(AuthConfig::OAuth2ClientCredentials {
                    token_url: token_url?,
                    client_id: client_id?,
                    client_secret: client_secret?,
                    scope: c.scope,
                })
            }
            RawAuth::OAuth2RefreshToken(r) => {
                let (token_url, client_id, client_secret) = self.oauth2_client(
                    key,
                    kind,
                    at.clone(),
                    t,
                    &r.token_url,
                    &r.client_id,
                    &r.client_secret,
                );
                let refresh_token = t.spanned("refresh_token", &r.refresh_token);
                let refresh = self
                    .required(&refresh_token, key, "refresh_token", kind, at)
                    .and_then(|s| self.secret(s, &format!("{key}.refresh_token")));
                Some(AuthConfig::OAuth2RefreshToken {
                    token_url: token_url?,
                    client_id: client_id?,
                    client_secret: client_secret?,
                    refresh_token: refresh?,
                })
            }
        }
    }

    /// The token URL, client id and client secret both OAuth2 grants need.
    #[allow(clippy::too_many_arguments)]
    fn oauth2_client(
        &mut self,
        key: &str,
        kind: &str,
        at: Range<usize>,
        t: &Tagged,
        token_url: &Option<String>,
        client_id: &Option<String>,
        client_secret: &Option<String>,
    ) -> (
        Option<url::Url>,
        Option<String>,
        Option<crate::secret::SecretRef>,
    ) {
        let (token_url, client_id, client_secret) = (
            t.spanned("token_url", token_url),
            t.spanned("client_id", client_id),
            t.spanned("client_secret", client_secret),
        );
        let token_url = self
            .required(&token_url, key, "token_url", kind, at.clone())
            .and_then(|u| self.url(u, &format!("{key}.token_url")));
        let client_id = self
            .required(&client_id, key, "client_id", kind, at.clone())
            .map(|s| s.get_ref().clone());
        let client_secret = self
            .required(&client_secret, key, "client_secret", kind, at)
            .and_then(|s| self.secret(s, &format!("{key}.client_secret")));
        (token_url, client_id, client_secret)
    }

    /// A `pagination` table: its style (`None` when it has a problem) and
    /// its page limits.
    fn pagination(
        &mut self,
        key: &str,
        p: &Spanned<Tagged>,
    ) -> (Option<PaginationConfig>, [Option<u64>; 2]) {
        let Some((raw, kind)) = self.tagged::<RawPagination>(key, p, "pagination") else {
            return (None, [None, None]);
        };
        let t = p.get_ref();
        let [max_pages, max_empty_pages] = raw.limits();
        let limits = self.page_limit_keys(
            key,
            &t.spanned("max_pages", &max_pages),
            &t.spanned("max_empty_pages", &max_empty_pages),
        );
        let at = t.type_span().unwrap_or(p.span());
        let str_or = |f: Option<String>, d: &str| f.unwrap_or_else(|| d.to_string());
        let positive = |c: &mut Self, f: Option<u64>, name: &str| {
            if f == Some(0) {
                let span = t.span_of(name).unwrap_or(at.clone());
                c.error(span, &format!("{key}.{name}"), "must be at least 1");
            }
        };
        let config = match raw {
            RawPagination::None(_) => Some(PaginationConfig::None),
            RawPagination::LinkHeader(_) => Some(PaginationConfig::LinkHeader),
            RawPagination::NextUrl(n) => Some(PaginationConfig::NextUrl {
                next_path: JsonPath::parse(&str_or(n.next_path, "next")),
                count_path: n.count_path.as_deref().map(JsonPath::parse),
                min_count: n.min_count.unwrap_or(1),
            }),
            RawPagination::Cursor(c) => {
                let (cursor_path, cursor_param) = (
                    t.spanned("cursor_path", &c.cursor_path),
                    t.spanned("cursor_param", &c.cursor_param),
                );
                let path = self.required(&cursor_path, key, "cursor_path", &kind, at.clone());
                let param = self.required(&cursor_param, key, "cursor_param", &kind, at);
                match (path, param) {
                    (Some(path), Some(param)) => Some(PaginationConfig::CursorToken {
                        cursor_path: JsonPath::parse(path.get_ref()),
                        cursor_param: param.get_ref().clone(),
                    }),
                    _ => None,
                }
            }
            RawPagination::Offset(o) => {
                positive(self, o.limit, "limit");
                Some(PaginationConfig::OffsetLimit {
                    offset_param: str_or(o.offset_param, "offset"),
                    limit_param: str_or(o.limit_param, "limit"),
                    limit: o.limit.unwrap_or(100).max(1),
                    start_offset: o.start_offset.unwrap_or(0),
                })
            }
            RawPagination::Page(g) => {
                positive(self, g.size, "size");
                Some(PaginationConfig::PageNumber {
                    page_param: str_or(g.page_param, "page"),
                    size_param: str_or(g.size_param, "per_page"),
                    size: g.size.unwrap_or(100).max(1),
                    start_page: g.start_page.unwrap_or(1),
                    total_pages_header: g.total_pages_header,
                })
            }
        };
        (config, limits)
    }

    fn rest_stream(
        &mut self,
        key: &str,
        s: &RawStream,
        source_limits: [Option<u64>; 2],
    ) -> Option<RestStreamConfig> {
        let errors_before = self.error_count();
        self.identifier(&s.name, &format!("{key}.name"), "stream name");
        let path = self
            .required(&s.path, key, "path", "rest", s.name.span())
            .map(|p| p.get_ref().clone());
        let mut params = Vec::new();
        if let Some(ps) = &s.params {
            for (k, v) in ps.get_ref() {
                let text = match v {
                    toml::Value::String(x) => x.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    _ => {
                        self.error(
                            ps.span(),
                            &format!("{key}.params.{k}"),
                            "must be a string, number or boolean",
                        );
                        continue;
                    }
                };
                params.push((k.clone(), text));
            }
        }
        let primary_key = match &s.primary_key {
            None => {
                self.error(s.name.span(), &format!("{key}.primary_key"), "missing key `primary_key`")
                    .hint("the field(s) that identify a record, e.g. primary_key = \"id\"; rows are merged by it");
                Vec::new()
            }
            Some(pk) => match pk.get_ref() {
                toml::Value::String(x) => vec![x.clone()],
                toml::Value::Array(a) if !a.is_empty() && a.iter().all(|v| v.is_str()) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                _ => {
                    self.error(
                        pk.span(),
                        &format!("{key}.primary_key"),
                        "must be a field name or a non-empty list of field names",
                    );
                    Vec::new()
                }
            },
        };
        let uses_placeholder = params.iter().any(|(_, v)| v.contains("{cursor}"));
        let incremental = s
            .incremental
            .as_ref()
            .and_then(|i| self.incremental(&format!("{key}.incremental"), i, uses_placeholder));
        let (pagination, in_pagination) = match &s.pagination {
            None => (None, [None, None]),
            Some(p) => self.pagination(&format!("{key}.pagination"), p),
        };
        let page_limits = self.stream_page_limits(key, s, in_pagination, source_limits);
        if self.error_count() > errors_before {
            return None;
        }
        Some(RestStreamConfig {
            name: s.name.get_ref().clone(),
            path: path?,
            params,
            record_selector: s
                .records
                .as_ref()
                .map(|r| JsonPath::parse(r.get_ref()))
                .unwrap_or_default(),
            primary_key,
            incremental,
            pagination,
            page_limits,
        })
    }

    /// A stream's page limits: each from the nearest place that sets it —
    /// the stream's own key, its `pagination` table, the source's — else
    /// the default.
    fn stream_page_limits(
        &mut self,
        key: &str,
        s: &RawStream,
        in_pagination: [Option<u64>; 2],
        source_limits: [Option<u64>; 2],
    ) -> PageLimits {
        let own = self.page_limit_keys(key, &s.max_pages, &s.max_empty_pages);
        let pick = |i: usize| own[i].or(in_pagination[i]).or(source_limits[i]);
        PageLimits {
            max_pages: pick(0).unwrap_or(PageLimits::DEFAULT_MAX_PAGES),
            max_empty_pages: pick(1).unwrap_or(PageLimits::DEFAULT_MAX_EMPTY_PAGES),
        }
    }

    /// `max_pages` and `max_empty_pages` of the table at `key`, where set;
    /// each must be at least 1.
    pub(crate) fn page_limit_keys(
        &mut self,
        key: &str,
        max_pages: &Option<Spanned<u64>>,
        max_empty_pages: &Option<Spanned<u64>>,
    ) -> [Option<u64>; 2] {
        let mut out = [None, None];
        for (slot, (name, value)) in out.iter_mut().zip([
            ("max_pages", max_pages),
            ("max_empty_pages", max_empty_pages),
        ]) {
            let Some(v) = value else { continue };
            if *v.get_ref() == 0 {
                self.error(v.span(), &format!("{key}.{name}"), "must be at least 1")
                    .hint("it bounds one read's paging; leave it out for the default");
            } else {
                *slot = Some(*v.get_ref());
            }
        }
        out
    }

    fn incremental(
        &mut self,
        key: &str,
        i: &Spanned<RawIncremental>,
        uses_placeholder: bool,
    ) -> Option<IncrementalConfig> {
        let at = i.span();
        let i = i.get_ref();
        let location = match (&i.param, &i.header) {
            (Some(p), None) => Some(KeyLocation::Query(p.get_ref().clone())),
            (None, Some(h)) => Some(KeyLocation::Header(h.get_ref().clone())),
            (None, None) if uses_placeholder => None,
            _ => {
                self.error(at, key, "incremental needs exactly one of `param` or `header` (or a `{cursor}` placeholder in params)")
                    .hint("where the saved cursor is sent, e.g. param = \"updated_since\"");
                return None;
            }
        };
        let value_format = match i.format.as_ref().map(|f| f.get_ref().as_str()) {
            None | Some("rfc3339") => CursorFormat::Rfc3339,
            Some("unix") => CursorFormat::UnixSeconds,
            Some("unix_ms") => CursorFormat::UnixMillis,
            Some(other) => {
                let span = i.format.as_ref().map(|f| f.span()).unwrap_or(0..0);
                self.error(
                    span,
                    &format!("{key}.format"),
                    format!("unknown cursor format `{other}`"),
                )
                .hint("one of: rfc3339, unix, unix_ms");
                return None;
            }
        };
        let template = i
            .template
            .as_ref()
            .map(|t| t.get_ref().clone())
            .unwrap_or_else(|| "{cursor}".into());
        if !template.contains("{cursor}") {
            let span = i.template.as_ref().map(|t| t.span()).unwrap_or(0..0);
            self.error(span, &format!("{key}.template"), "must contain `{cursor}`");
            return None;
        }
        Some(IncrementalConfig {
            cursor_field: i.cursor_field.get_ref().clone(),
            location,
            value_format,
            template,
            lookback: Duration::from_secs(
                i.lookback_secs.as_ref().map(|l| *l.get_ref()).unwrap_or(0),
            ),
            start: i.start.as_ref().map(|s| s.get_ref().clone()),
        })
    }
}
