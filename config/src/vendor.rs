//! Vendor connector sources (`type = "greenhouse"` …): their short config,
//! its raw form, and its validation into [`VendorSourceConfig`].
//!
//! A vendor source names credentials by reference, a start date and
//! optionally a subset of streams; paging, auth flow, rate limits and
//! table shapes are the connector's business, not the config's.

use std::ops::Range;

use chrono::NaiveDate;
use serde::Deserialize;
use toml::de::DeValue;
use toml::Spanned;

use crate::http::RequestWindow;
use crate::model::{AuthConfig, HttpConfig, SourceConfig};
use crate::raw::S;
use crate::validate::Checker;

mod amazon_connect;
pub use amazon_connect::{AmazonConnectSettings, DEFAULT_LOOKBACK_DAYS, SIGNING_SERVICE};

/// The vendor connectors, in registration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// Greenhouse Harvest v3 (ATS).
    Greenhouse,
    /// QuickBooks Online (accounting).
    QuickBooks,
    /// Gusto (payroll).
    Gusto,
    /// Zendesk Talk (contact center).
    ZendeskTalk,
    /// HubSpot CRM v3.
    HubSpot,
    /// Genesys Cloud (contact center).
    Genesys,
    /// Xero Accounting.
    Xero,
    /// Lever (ATS).
    Lever,
    /// Salesforce REST query (CRM).
    Salesforce,
    /// ADP Workforce Now (payroll and HR), over mutual TLS.
    Adp,
    /// Amazon Connect (contact center), signed with AWS SigV4.
    AmazonConnect,
}

impl Vendor {
    pub const ALL: [Vendor; 11] = [
        Vendor::Greenhouse,
        Vendor::QuickBooks,
        Vendor::Gusto,
        Vendor::ZendeskTalk,
        Vendor::HubSpot,
        Vendor::Genesys,
        Vendor::Xero,
        Vendor::Lever,
        Vendor::Salesforce,
        Vendor::Adp,
        Vendor::AmazonConnect,
    ];

    /// The source `type` that selects it.
    pub fn type_name(self) -> &'static str {
        match self {
            Vendor::Greenhouse => "greenhouse",
            Vendor::QuickBooks => "quickbooks",
            Vendor::Gusto => "gusto",
            Vendor::ZendeskTalk => "zendesk_talk",
            Vendor::HubSpot => "hubspot",
            Vendor::Genesys => "genesys",
            Vendor::Xero => "xero",
            Vendor::Lever => "lever",
            Vendor::Salesforce => "salesforce",
            Vendor::Adp => "adp",
            Vendor::AmazonConnect => "amazon_connect",
        }
    }

    /// The request limit the vendor documents for one account (see
    /// `vendor-apis.md`), which a source keeps to unless it sets
    /// `requests_per_second`. `None` where the limit is not a short window:
    /// Salesforce's is a 24-hour allocation (a 403 past it), which pacing
    /// could only spread thin.
    pub fn documented_limit(self) -> Option<RequestWindow> {
        match self {
            // v3: "varies per integration"; 75 is the one published figure,
            // the window 10 s or 30 s [?]; the headers correct for the rest.
            Vendor::Greenhouse => Some(RequestWindow::new(75, 10)),
            // 500 a minute per realm.
            Vendor::QuickBooks => Some(RequestWindow::new(500, 60)),
            // 200 a minute, rolling.
            Vendor::Gusto => Some(RequestWindow::new(200, 60)),
            // 10 a minute on the incremental exports (the account's own
            // limit, far higher, comes in the headers).
            Vendor::ZendeskTalk => {
                Some(RequestWindow::new(10, 60).on_paths_containing("/stats/incremental/"))
            }
            // Free/Starter private apps; Pro's 190 is read from the headers
            // only as requests left, so a Pro account sets
            // `requests_per_second = 19`.
            Vendor::HubSpot => Some(RequestWindow::new(100, 10)),
            // About 300 a minute for a client-credentials token.
            Vendor::Genesys => Some(RequestWindow::new(300, 60)),
            // 60 a minute per tenant.
            Vendor::Xero => Some(RequestWindow::new(60, 60)),
            // A bucket of 10 a second (burst 20): 10 in any second keeps
            // under it.
            Vendor::Lever => Some(RequestWindow::new(10, 1)),
            Vendor::Salesforce => None,
            // Not published [?]: a 429 with `Retry-After` is waited out.
            Vendor::Adp => None,
            // GetMetricDataV2's quota is not in the reference; throttling
            // (429, no Retry-After) is backed off.
            Vendor::AmazonConnect => None,
        }
    }

    pub fn from_type(t: &str) -> Option<Vendor> {
        Vendor::ALL.into_iter().find(|v| v.type_name() == t)
    }

    /// Every built-in source `type` — `rest`, then each vendor's in
    /// [`Vendor::ALL`] order — comma-separated, for hints.
    pub fn builtin_types() -> String {
        std::iter::once("rest")
            .chain(Vendor::ALL.iter().map(|v| v.type_name()))
            .chain(crate::database::DatabaseEngine::TYPES)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Stream (and warehouse table) names, in read order.
    pub fn streams(self) -> &'static [&'static str] {
        match self {
            Vendor::Greenhouse => &["jobs", "candidates", "applications", "offers"],
            Vendor::QuickBooks => &["customers", "invoices", "payments"],
            Vendor::Gusto => &["employees", "payrolls", "employee_compensations"],
            Vendor::ZendeskTalk => &["calls", "legs", "agents_activity", "users"],
            Vendor::HubSpot => &["owners", "contacts", "deals"],
            Vendor::Genesys => &[
                "users",
                "conversations",
                "evaluations",
                "surveys",
                "user_presence",
                "conversation_summaries",
            ],
            Vendor::Xero => &["contacts", "invoices", "invoice_line_items", "payments"],
            Vendor::Lever => &[
                "opportunities",
                "postings",
                "users",
                "offers",
                "deleted_opportunities",
            ],
            Vendor::Salesforce => &["opportunities", "accounts", "users"],
            Vendor::Adp => &["workers", "work_assignments"],
            Vendor::AmazonConnect => &["agent_metrics", "contacts"],
        }
    }

    /// The production API, used when `base_url` is not set.
    fn default_base_url(self) -> &'static str {
        match self {
            Vendor::Greenhouse => "https://harvest.greenhouse.io/v3",
            Vendor::QuickBooks => "https://quickbooks.api.intuit.com",
            Vendor::Gusto => "https://api.gusto.com",
            // Built from `subdomain`.
            Vendor::ZendeskTalk => "",
            Vendor::HubSpot => "https://api.hubapi.com",
            Vendor::Genesys => "https://api.mypurecloud.com",
            Vendor::Xero => "https://api.xero.com",
            Vendor::Lever => "https://api.lever.co/v1",
            // The login host; the API host is the token's `instance_url`.
            Vendor::Salesforce => "https://login.salesforce.com",
            Vendor::Adp => "https://api.adp.com",
            // Built from the region of `instance_arn`.
            Vendor::AmazonConnect => "",
        }
    }

    fn default_token_url(self) -> &'static str {
        match self {
            Vendor::Greenhouse => "https://auth.greenhouse.io/token",
            Vendor::QuickBooks => "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
            Vendor::Gusto => "https://api.gusto.com/oauth/token",
            Vendor::ZendeskTalk => "",
            Vendor::HubSpot => "https://api.hubapi.com/oauth/v1/token",
            Vendor::Genesys => "https://login.mypurecloud.com/oauth/token",
            Vendor::Xero => "https://identity.xero.com/connect/token",
            Vendor::Lever => "https://auth.lever.co/oauth/token",
            Vendor::Salesforce => "https://login.salesforce.com/services/oauth2/token",
            Vendor::Adp => "https://accounts.adp.com/auth/oauth/v2/token",
            // Requests are signed (SigV4); there is no token.
            Vendor::AmazonConnect => "",
        }
    }

    /// The vendor-specific account key: required, and what it means.
    fn account_key(self) -> Option<(&'static str, &'static str)> {
        match self {
            Vendor::Greenhouse => Some((
                "user_id",
                "the Greenhouse user id the token acts as (`sub`)",
            )),
            Vendor::QuickBooks => Some(("realm_id", "the QuickBooks company (realm) id")),
            Vendor::Gusto => Some(("company_id", "the Gusto company uuid")),
            Vendor::Xero => Some((
                "tenant_id",
                "the Xero organisation's tenant id (a UUID, from GET https://api.xero.com/connections)",
            )),
            Vendor::ZendeskTalk
            | Vendor::HubSpot
            | Vendor::Genesys
            | Vendor::Lever
            | Vendor::Salesforce
            | Vendor::Adp => None,
            | Vendor::AmazonConnect => None,
        }
    }
}

/// The Salesforce REST API version used unless `api_version` says otherwise.
pub const SALESFORCE_API_VERSION: &str = "v66.0";

/// A validated vendor source.
#[derive(Debug, Clone)]
pub struct VendorSourceConfig {
    pub vendor: Vendor,
    /// The API root (the vendor's production URL unless overridden).
    pub base_url: url::Url,
    /// Built from the vendor's credential keys.
    pub auth: AuthConfig,
    /// Greenhouse user id, QuickBooks realm id, Gusto company id or Xero
    /// tenant id.
    pub account: Option<String>,
    /// Where the first sync starts; `None` reads all history the API allows.
    pub start_date: Option<NaiveDate>,
    /// The selected streams, in the vendor's read order.
    pub streams: Vec<String>,
    pub http: HttpConfig,
    /// Bounds on each paging sequence of a read (`max_pages`,
    /// `max_empty_pages`).
    pub page_limits: crate::model::PageLimits,
    /// The REST API version of a vendor whose paths carry one
    /// (Salesforce's `v66.0`); `None` for the others.
    pub api_version: Option<String>,
    /// The client certificate and extra CA of a vendor that takes them
    /// (ADP's mutual TLS); the default for the others.
    pub tls: crate::client_tls::ClientTlsConfig,
    /// Amazon Connect's instance, queues and look-back; `None` for the others.
    pub amazon_connect: Option<AmazonConnectSettings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVendorSource {
    #[serde(rename = "type")]
    pub kind: S<String>,
    pub schedule: Option<S<String>>,
    pub timezone: Option<S<String>>,
    pub base_url: Option<S<String>>,
    pub token_url: Option<S<String>>,
    pub client_id: Option<S<String>>,
    pub client_secret: Option<S<String>>,
    pub refresh_token: Option<S<String>>,
    pub user_id: Option<S<toml::Value>>,
    pub realm_id: Option<S<toml::Value>>,
    pub company_id: Option<S<toml::Value>>,
    pub tenant_id: Option<S<toml::Value>>,
    pub subdomain: Option<S<String>>,
    pub email: Option<S<String>>,
    pub api_token: Option<S<String>>,
    pub api_key: Option<S<String>>,
    pub api_version: Option<S<String>>,
    pub start_date: Option<S<toml::Value>>,
    pub streams: Option<S<Vec<S<String>>>>,
    pub timeout_secs: Option<S<u64>>,
    pub max_retries: Option<S<u32>>,
    pub backoff_base_ms: Option<S<u64>>,
    pub backoff_max_secs: Option<S<u64>>,
    pub requests_per_second: Option<S<toml::Value>>,
    pub max_pages: Option<S<u64>>,
    pub max_empty_pages: Option<S<u64>>,
    pub client_certificate: Option<S<String>>,
    pub client_key: Option<S<String>>,
    pub ca_certificate: Option<S<String>>,
    pub instance_arn: Option<S<String>>,
    pub access_key_id: Option<S<String>>,
    pub secret_access_key: Option<S<String>>,
    pub session_token: Option<S<String>>,
    pub queues: Option<S<Vec<S<String>>>>,
    pub lookback_days: Option<S<i64>>,
}

/// The vendor a source table names in its `type`, if any.
pub(crate) fn vendor_of(value: &Spanned<DeValue<'_>>) -> Option<Vendor> {
    let DeValue::Table(t) = value.get_ref() else {
        return None;
    };
    let (_, v) = t.iter().find(|(k, _)| k.get_ref() == "type")?;
    match v.get_ref() {
        DeValue::String(s) => Vendor::from_type(s),
        _ => None,
    }
}

/// `8-4-4-4-12` hex digits, as Xero's tenant ids are.
fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn text(v: &S<toml::Value>) -> Option<String> {
    match v.get_ref() {
        toml::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        toml::Value::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

impl Checker<'_> {
    pub(crate) fn vendor_source(
        &mut self,
        name: Spanned<String>,
        raw: RawVendorSource,
    ) -> Option<SourceConfig> {
        let errors_before = self.error_count();
        let key = format!("sources.{}", name.get_ref());
        let vendor = Vendor::from_type(raw.kind.get_ref()).expect("dispatched on a vendor type");
        let kind = vendor.type_name();
        self.identifier(&name, &key, "source name");
        let schedule = self.schedule(&key, raw.schedule.as_ref(), raw.timezone.as_ref());
        let at = raw.kind.span();

        // Keys that belong to another vendor are mistakes, not noise.
        let (secret_keys, id_keys): (&[&str], &[&str]) = match vendor {
            Vendor::Greenhouse => (&["client_id", "client_secret", "token_url"], &["user_id"]),
            Vendor::QuickBooks => (
                &["client_id", "client_secret", "refresh_token", "token_url"],
                &["realm_id"],
            ),
            Vendor::Gusto => (
                &["client_id", "client_secret", "refresh_token", "token_url"],
                &["company_id"],
            ),
            Vendor::ZendeskTalk => (&["email", "api_token"], &["subdomain"]),
            Vendor::HubSpot => (
                &["client_id", "client_secret", "refresh_token", "token_url"],
                &[],
            ),
            Vendor::Genesys => (&["client_id", "client_secret", "token_url"], &[]),
            Vendor::Xero => (
                &["client_id", "client_secret", "refresh_token", "token_url"],
                &["tenant_id"],
            ),
            Vendor::Lever => (
                &[
                    "api_key",
                    "client_id",
                    "client_secret",
                    "refresh_token",
                    "token_url",
                ],
                &[],
            ),
            Vendor::Salesforce => (
                &["client_id", "client_secret", "refresh_token", "token_url"],
                &["api_version"],
            ),
            Vendor::Adp => (
                &[
                    "client_id",
                    "client_secret",
                    "token_url",
                    "client_certificate",
                    "client_key",
                    "ca_certificate",
                ],
                &[],
            ),
            Vendor::AmazonConnect => (
                &["access_key_id", "secret_access_key", "session_token"],
                &["instance_arn", "queues", "lookback_days"],
            ),
        };
        let shared: [(&str, Option<Range<usize>>); 16] = [
            ("client_id", raw.client_id.as_ref().map(|v| v.span())),
            (
                "client_secret",
                raw.client_secret.as_ref().map(|v| v.span()),
            ),
            (
                "refresh_token",
                raw.refresh_token.as_ref().map(|v| v.span()),
            ),
            ("token_url", raw.token_url.as_ref().map(|v| v.span())),
            ("user_id", raw.user_id.as_ref().map(|v| v.span())),
            ("realm_id", raw.realm_id.as_ref().map(|v| v.span())),
            ("company_id", raw.company_id.as_ref().map(|v| v.span())),
            ("tenant_id", raw.tenant_id.as_ref().map(|v| v.span())),
            ("subdomain", raw.subdomain.as_ref().map(|v| v.span())),
            ("email", raw.email.as_ref().map(|v| v.span())),
            ("api_token", raw.api_token.as_ref().map(|v| v.span())),
            ("api_key", raw.api_key.as_ref().map(|v| v.span())),
            ("api_version", raw.api_version.as_ref().map(|v| v.span())),
            (
                "client_certificate",
                raw.client_certificate.as_ref().map(|v| v.span()),
            ),
            ("client_key", raw.client_key.as_ref().map(|v| v.span())),
            (
                "ca_certificate",
                raw.ca_certificate.as_ref().map(|v| v.span()),
            ),
        ];
        let present = shared.into_iter().chain(amazon_connect::own_keys(&raw));
        for (field, span) in present {
            if let Some(span) = span {
                if !secret_keys.contains(&field) && !id_keys.contains(&field) {
                    self.error(
                        span,
                        &format!("{key}.{field}"),
                        format!("not used by type = \"{kind}\""),
                    );
                }
            }
        }

        let need =
            |c: &mut Self, v: &Option<S<String>>, field: &str, hint: &str| -> Option<S<String>> {
                match v {
                    Some(s) => Some(s.clone()),
                    None => {
                        c.error(
                            at.clone(),
                            &format!("{key}.{field}"),
                            format!("missing key `{field}` (required by type = \"{kind}\")"),
                        )
                        .hint(hint.to_string());
                        None
                    }
                }
            };

        let account = match vendor.account_key() {
            None => None,
            Some((field, what)) => {
                let v = match field {
                    "user_id" => &raw.user_id,
                    "realm_id" => &raw.realm_id,
                    "tenant_id" => &raw.tenant_id,
                    _ => &raw.company_id,
                };
                match v {
                    None => {
                        self.error(
                            at.clone(),
                            &format!("{key}.{field}"),
                            format!("missing key `{field}` (required by type = \"{kind}\")"),
                        )
                        .hint(what.to_string());
                        None
                    }
                    Some(v) => match text(v) {
                        // Xero answers a malformed tenant id with a bare 403;
                        // its shape is known, so say so here instead.
                        Some(t) if vendor == Vendor::Xero && !is_uuid(&t) => {
                            self.error(
                                v.span(),
                                &format!("{key}.{field}"),
                                format!("`{t}` is not a tenant id"),
                            )
                            .hint(what.to_string());
                            None
                        }
                        Some(t) => Some(t),
                        None => {
                            self.error(
                                v.span(),
                                &format!("{key}.{field}"),
                                "must be a non-empty string or number",
                            )
                            .hint(what.to_string());
                            None
                        }
                    },
                }
            }
        };

        let all = vendor.streams();
        let streams: Vec<String> = match &raw.streams {
            None => all.iter().map(|s| s.to_string()).collect(),
            Some(list) => {
                if list.get_ref().is_empty() {
                    self.error(
                        list.span(),
                        &format!("{key}.streams"),
                        "must name at least one stream",
                    )
                    .hint(format!("type = \"{kind}\" has: {}", all.join(", ")));
                }
                for s in list.get_ref() {
                    if !all.contains(&s.get_ref().as_str()) {
                        self.error(
                            s.span(),
                            &format!("{key}.streams"),
                            format!("unknown stream `{}`", s.get_ref()),
                        )
                        .hint(format!("type = \"{kind}\" has: {}", all.join(", ")));
                    }
                }
                // Keep the vendor's order: later streams may rely on earlier ones.
                all.iter()
                    .filter(|a| list.get_ref().iter().any(|s| s.get_ref() == *a))
                    .map(|s| s.to_string())
                    .collect()
            }
        };

        // Amazon Connect: the instance and credentials, and the endpoint
        // of the instance's region unless base_url says otherwise.
        let connect = (vendor == Vendor::AmazonConnect)
            .then(|| self.amazon_connect(&key, &raw, at.clone(), &streams))
            .flatten();
        let base_url = match (&raw.base_url, vendor, &raw.subdomain) {
            (Some(u), _, _) => self.url(u, &format!("{key}.base_url")),
            (None, Vendor::ZendeskTalk, Some(sub)) => {
                let s = sub.get_ref();
                if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    self.error(
                        sub.span(),
                        &format!("{key}.subdomain"),
                        "must be the Zendesk subdomain, e.g. \"acme\" for acme.zendesk.com",
                    );
                    None
                } else {
                    url::Url::parse(&format!("https://{s}.zendesk.com")).ok()
                }
            }
            (None, Vendor::ZendeskTalk, None) => {
                self.error(at.clone(), &format!("{key}.subdomain"), "missing key `subdomain` (required by type = \"zendesk_talk\" unless base_url is set)")
                    .hint("e.g. subdomain = \"acme\" for acme.zendesk.com");
                None
            }
            (None, Vendor::AmazonConnect, _) => connect.as_ref().and_then(|(_, _, u)| u.clone()),
            (None, v, _) => url::Url::parse(v.default_base_url()).ok(),
        };

        let auth = match vendor {
            Vendor::AmazonConnect => connect.as_ref().map(|(_, auth, _)| auth.clone()),
            Vendor::Lever => self.lever_auth(&key, &raw, at.clone(), base_url.as_ref()),
            Vendor::ZendeskTalk => {
                let email = need(
                    self,
                    &raw.email,
                    "email",
                    "the agent e-mail the API token belongs to",
                );
                let token = need(
                    self,
                    &raw.api_token,
                    "api_token",
                    "e.g. api_token = \"env:ZENDESK_API_TOKEN\"",
                )
                .and_then(|t| self.secret(&t, &format!("{key}.api_token")));
                // Zendesk API-token auth: Basic `{email}/token:{api_token}`.
                match (email, token) {
                    (Some(e), Some(t)) => Some(AuthConfig::Basic {
                        username: format!("{}/token", e.get_ref()),
                        password: t,
                    }),
                    _ => None,
                }
            }
            _ => {
                let client_id = need(
                    self,
                    &raw.client_id,
                    "client_id",
                    "the OAuth app's client id",
                )
                .map(|s| s.into_inner());
                let secret = need(
                    self,
                    &raw.client_secret,
                    "client_secret",
                    "e.g. client_secret = \"env:CLIENT_SECRET\"",
                )
                .and_then(|s| self.secret(&s, &format!("{key}.client_secret")));
                let token_url = match &raw.token_url {
                    Some(u) => self.url(u, &format!("{key}.token_url")),
                    None if vendor == Vendor::Gusto && raw.base_url.is_some() => {
                        // Gusto's token endpoint lives on the API host.
                        base_url.as_ref().and_then(|b| b.join("/oauth/token").ok())
                    }
                    None if vendor == Vendor::Genesys && raw.base_url.is_some() => {
                        // The SDKs' rule: the login host is the API host with `api.` → `login.`.
                        base_url.as_ref().and_then(|b| {
                            let host = b.host_str()?;
                            let login = host
                                .strip_prefix("api.")
                                .map_or(host.to_string(), |h| format!("login.{h}"));
                            let mut u = b.clone();
                            u.set_host(Some(&login)).ok()?;
                            u.join("/oauth/token").ok()
                        })
                    }
                    None if vendor == Vendor::HubSpot && raw.base_url.is_some() => base_url
                        .as_ref()
                        .and_then(|b| b.join("/oauth/v1/token").ok()),
                    // A My Domain (or sandbox, or mock) host issues its own
                    // tokens; client credentials even require it.
                    None if vendor == Vendor::Salesforce && raw.base_url.is_some() => base_url
                        .as_ref()
                        .and_then(|b| b.join("/services/oauth2/token").ok()),
                    // ADP's token host is not its API host; a base_url of
                    // another host (a mock, a proxy) is taken to serve both.
                    None if vendor == Vendor::Adp && raw.base_url.is_some() => base_url
                        .as_ref()
                        .and_then(|b| b.join("/auth/oauth/v2/token").ok()),
                    None => url::Url::parse(vendor.default_token_url()).ok(),
                };
                // Xero: a custom connection (one organisation) has no
                // refresh token and uses the client-credentials grant.
                // Salesforce likewise without one (a connected app's
                // client-credentials flow, which needs a My Domain base_url).
                let client_credentials =
                    matches!(vendor, Vendor::Greenhouse | Vendor::Genesys | Vendor::Adp)
                        || (matches!(vendor, Vendor::Xero | Vendor::Salesforce)
                            && raw.refresh_token.is_none());
                if client_credentials {
                    match (token_url, client_id, secret) {
                        (Some(token_url), Some(client_id), Some(client_secret)) => {
                            Some(AuthConfig::OAuth2ClientCredentials {
                                token_url,
                                client_id,
                                client_secret,
                                scope: None,
                            })
                        }
                        _ => None,
                    }
                } else {
                    let refresh = need(self, &raw.refresh_token, "refresh_token", "the refresh token from the OAuth consent; rotated tokens are then kept in the warehouse")
                        .and_then(|s| self.secret(&s, &format!("{key}.refresh_token")));
                    match (token_url, client_id, secret, refresh) {
                        (
                            Some(token_url),
                            Some(client_id),
                            Some(client_secret),
                            Some(refresh_token),
                        ) => Some(AuthConfig::OAuth2RefreshToken {
                            token_url,
                            client_id,
                            client_secret,
                            refresh_token,
                        }),
                        _ => None,
                    }
                }
            }
        };

        let start_date = raw.start_date.as_ref().and_then(|d| {
            let t = match d.get_ref() {
                toml::Value::String(s) => s.clone(),
                toml::Value::Datetime(dt) => dt.to_string(),
                _ => String::new(),
            };
            match NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d") {
                Ok(date) => Some(date),
                Err(_) => {
                    self.error(
                        d.span(),
                        &format!("{key}.start_date"),
                        format!("`{t}` is not a date"),
                    )
                    .hint("YYYY-MM-DD, e.g. start_date = \"2024-01-01\"");
                    None
                }
            }
        });

        let api_version = self.api_version(&key, vendor, &raw);
        let tls = self.vendor_tls(&key, vendor, &raw, at.clone());
        let http = self.vendor_http(&key, &raw).map(|mut h| {
            if h.requests_per_second.is_none() {
                h.documented_limit = vendor.documented_limit();
            }
            h
        });
        let [max_pages, max_empty_pages] =
            self.page_limit_keys(&key, &raw.max_pages, &raw.max_empty_pages);
        let page_limits = crate::model::PageLimits {
            max_pages: max_pages.unwrap_or(crate::model::PageLimits::DEFAULT_MAX_PAGES),
            max_empty_pages: max_empty_pages
                .unwrap_or(crate::model::PageLimits::DEFAULT_MAX_EMPTY_PAGES),
        };
        if self.error_count() > errors_before {
            return None;
        }
        let cfg = VendorSourceConfig {
            vendor,
            base_url: base_url?,
            auth: auth?,
            account,
            start_date,
            streams,
            http: http?,
            page_limits,
            api_version,
            tls: tls?,
            amazon_connect: connect.map(|(settings, _, _)| settings),
        };
        Some(SourceConfig {
            name: name.into_inner(),
            schedule: schedule.flatten(),
            connector: crate::model::ConnectorConfig::Vendor(cfg),
        })
    }

    /// Lever takes either an API key (HTTP Basic `api_key:`) or OAuth
    /// (client id and secret plus a refresh token), never both: a block
    /// mixing them is a mistake, said at each key of the other kind.
    fn lever_auth(
        &mut self,
        key: &str,
        raw: &RawVendorSource,
        at: Range<usize>,
        base_url: Option<&url::Url>,
    ) -> Option<AuthConfig> {
        let oauth = [
            ("client_id", &raw.client_id),
            ("client_secret", &raw.client_secret),
            ("refresh_token", &raw.refresh_token),
            ("token_url", &raw.token_url),
        ];
        const BOTH: &str = "type = \"lever\" takes api_key (Basic) or client_id, client_secret and refresh_token (OAuth), not both";
        if let Some(k) = &raw.api_key {
            for (field, v) in oauth {
                if let Some(v) = v {
                    self.error(v.span(), &format!("{key}.{field}"), "not used with api_key")
                        .hint(BOTH);
                }
            }
            let key_ref = self.secret(k, &format!("{key}.api_key"))?;
            return Some(AuthConfig::BasicApiKey { key: key_ref });
        }
        if oauth[..3].iter().all(|(_, v)| v.is_none()) {
            self.error(
                at,
                &format!("{key}.api_key"),
                "missing key `api_key` (required by type = \"lever\" unless OAuth is configured)",
            )
            .hint("api_key = \"env:LEVER_API_KEY\", or client_id, client_secret and refresh_token for OAuth");
            return None;
        }
        let mut missing = false;
        for (field, v) in &oauth[..3] {
            if v.is_none() {
                missing = true;
                self.error(
                    at.clone(),
                    &format!("{key}.{field}"),
                    format!("missing key `{field}` (required by type = \"lever\" with OAuth)"),
                )
                .hint(
                    "OAuth needs client_id, client_secret and refresh_token; or use api_key alone",
                );
            }
        }
        let client_secret = raw
            .client_secret
            .as_ref()
            .and_then(|s| self.secret(s, &format!("{key}.client_secret")));
        let refresh_token = raw
            .refresh_token
            .as_ref()
            .and_then(|s| self.secret(s, &format!("{key}.refresh_token")));
        let token_url = match (&raw.token_url, base_url) {
            (Some(u), _) => self.url(u, &format!("{key}.token_url")),
            // The sandbox's tokens come from its own Auth0 tenant.
            (None, Some(b)) if b.host_str() == Some("api.sandbox.lever.co") => {
                url::Url::parse("https://sandbox-lever.auth0.com/oauth/token").ok()
            }
            // Any other base_url (a mock, a proxy): its own `/oauth/token`.
            (None, Some(b)) if raw.base_url.is_some() => b.join("/oauth/token").ok(),
            (None, _) => url::Url::parse(Vendor::Lever.default_token_url()).ok(),
        };
        if missing {
            return None;
        }
        Some(AuthConfig::OAuth2RefreshToken {
            token_url: token_url?,
            client_id: raw.client_id.as_ref()?.get_ref().clone(),
            client_secret: client_secret?,
            refresh_token: refresh_token?,
        })
    }

    /// Salesforce's API version: `vMM.m` (default [`SALESFORCE_API_VERSION`]).
    fn api_version(&mut self, key: &str, vendor: Vendor, raw: &RawVendorSource) -> Option<String> {
        if vendor != Vendor::Salesforce {
            return None;
        }
        let Some(v) = &raw.api_version else {
            return Some(SALESFORCE_API_VERSION.to_string());
        };
        let t = v.get_ref().trim();
        let ok = t
            .strip_prefix('v')
            .and_then(|n| n.split_once('.'))
            .is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            });
        if !ok {
            self.error(
                v.span(),
                &format!("{key}.api_version"),
                format!("`{t}` is not a Salesforce API version"),
            )
            .hint(format!("e.g. api_version = \"{SALESFORCE_API_VERSION}\""));
            return None;
        }
        Some(t.to_string())
    }

    /// ADP's client certificate and key (required) and an extra CA; no
    /// other vendor takes them (the keys are refused above).
    fn vendor_tls(
        &mut self,
        key: &str,
        vendor: Vendor,
        raw: &RawVendorSource,
        at: Range<usize>,
    ) -> Option<crate::client_tls::ClientTlsConfig> {
        if vendor != Vendor::Adp {
            return Some(Default::default());
        }
        let identity = self.client_identity(
            key,
            at,
            raw.client_certificate.as_ref(),
            raw.client_key.as_ref(),
            vendor.type_name(),
        );
        let ca_certificate = self.ca_certificate(key, raw.ca_certificate.as_ref());
        Some(crate::client_tls::ClientTlsConfig {
            identity: Some(identity?),
            ca_certificate: ca_certificate?,
        })
    }

    fn vendor_http(&mut self, key: &str, raw: &RawVendorSource) -> Option<HttpConfig> {
        self.http_settings(
            key,
            crate::http::HttpKeys {
                timeout_secs: &raw.timeout_secs,
                max_retries: &raw.max_retries,
                backoff_base_ms: &raw.backoff_base_ms,
                backoff_max_secs: &raw.backoff_max_secs,
                requests_per_second: &raw.requests_per_second,
                // Vendor connectors read one page at a time.
                prefetch_pages: None,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::model::ConnectorConfig;
    use std::path::Path;

    use super::*;

    fn check(text: &str) -> Result<crate::Config, crate::ConfigErrors> {
        crate::parse(text, Path::new("/etc/conveyor/conveyor.toml"))
    }

    #[test]
    fn every_vendor_round_trips_through_its_type_and_has_streams() {
        for v in Vendor::ALL {
            assert_eq!(Vendor::from_type(v.type_name()), Some(v));
            assert!(!v.streams().is_empty(), "{v:?} declares no streams");
        }
        assert_eq!(Vendor::from_type("rest"), None);
        assert_eq!(
            Vendor::builtin_types(),
            "rest, greenhouse, quickbooks, gusto, zendesk_talk, hubspot, genesys, xero, lever, salesforce, adp, amazon_connect, postgres, mysql, mariadb"
        );
    }

    #[test]
    fn a_vendor_source_may_set_its_page_limits() {
        let text = r#"[warehouse]
path = "wh.duckdb"

[sources.crm]
type = "hubspot"
client_id = "cid"
client_secret = "env:PATH"
refresh_token = "env:PATH"
max_pages = 2000
"#;
        let c = check(text).unwrap();
        let ConnectorConfig::Vendor(v) = &c.source("crm").unwrap().connector else {
            panic!("a vendor source")
        };
        assert_eq!(v.page_limits.max_pages, 2000);
        assert_eq!(
            v.page_limits.max_empty_pages,
            crate::PageLimits::DEFAULT_MAX_EMPTY_PAGES
        );
        let zero = text.replace("max_pages = 2000", "max_empty_pages = 0");
        let e = check(&zero).unwrap_err().to_string();
        assert!(
            e.contains("sources.crm.max_empty_pages: must be at least 1"),
            "{e}"
        );
    }

    #[test]
    fn a_short_vendor_source_builds_its_auth_and_streams() {
        let text = r#"[warehouse]
path = "wh.duckdb"

[sources.ats]
type = "greenhouse"
client_id = "cid"
client_secret = "env:PATH"
user_id = 4021
start_date = "2024-01-01"
streams = ["offers", "candidates"]
"#;
        let c = check(text).unwrap();
        let ConnectorConfig::Vendor(v) = &c.source("ats").unwrap().connector else {
            panic!("a vendor source")
        };
        assert_eq!(v.vendor, Vendor::Greenhouse);
        assert_eq!(v.account.as_deref(), Some("4021"));
        assert_eq!(v.streams, ["candidates", "offers"], "vendor order kept");
        assert_eq!(v.start_date, NaiveDate::from_ymd_opt(2024, 1, 1));
        assert_eq!(v.base_url.as_str(), "https://harvest.greenhouse.io/v3");
        assert!(
            matches!(&v.auth, AuthConfig::OAuth2ClientCredentials { token_url, .. } if token_url.as_str() == "https://auth.greenhouse.io/token")
        );
    }

    #[test]
    fn the_commented_source_examples_in_the_example_config_are_valid() {
        let example = include_str!("../../conveyor.example.toml");
        // The commented `[sources.…]` blocks, uncommented; secrets from a
        // variable that is always set.
        let mut text = String::from("[warehouse]\npath = \"wh.duckdb\"\n");
        let mut inside = false;
        for line in example.lines() {
            let body = line.strip_prefix("# ").unwrap_or("");
            if body.starts_with("[sources.") || body.starts_with("[[sources.") {
                inside = true;
            } else if !line.starts_with("# ") || body.trim().is_empty() {
                inside = false;
            }
            if inside {
                text.push_str(body);
                text.push('\n');
            }
        }
        let text: String = text
            .lines()
            .map(|l| match l.find("\"env:") {
                Some(at) => {
                    let end = l[at + 1..].find('"').map_or(l.len(), |e| at + 2 + e);
                    format!("{}\"env:PATH\"{}\n", &l[..at], &l[end..])
                }
                None => format!("{l}\n"),
            })
            .collect();
        // Offline: the examples name files (ADP's certificate and key) that
        // are not on this machine; everything else is checked as usual.
        let c = crate::parse_offline(&text, Path::new("/etc/conveyor/conveyor.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let mut kinds: Vec<&str> = c.sources.iter().map(|s| s.connector.type_name()).collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [
                "adp",
                "amazon_connect",
                "genesys",
                "greenhouse",
                "gusto",
                "hubspot",
                "lever",
                "postgres",
                "quickbooks",
                "salesforce",
                "xero",
                "zendesk_talk"
            ]
        );
    }

    #[test]
    fn a_xero_source_takes_a_tenant_and_a_refresh_token_or_client_credentials() {
        let text = r#"[warehouse]
path = "wh.duckdb"

[sources.books]
type = "xero"
tenant_id = "70784a63-d24b-46a9-a4db-0e70a274b056"
client_id = "xero-client"
client_secret = "env:PATH"
refresh_token = "env:PATH"
streams = ["payments", "invoices"]
"#;
        let c = check(text).unwrap();
        let ConnectorConfig::Vendor(v) = &c.source("books").unwrap().connector else {
            panic!("a vendor source")
        };
        assert_eq!(v.vendor, Vendor::Xero);
        assert_eq!(
            v.account.as_deref(),
            Some("70784a63-d24b-46a9-a4db-0e70a274b056")
        );
        assert_eq!(v.streams, ["invoices", "payments"], "vendor order kept");
        assert_eq!(v.base_url.as_str(), "https://api.xero.com/");
        assert!(
            matches!(&v.auth, AuthConfig::OAuth2RefreshToken { token_url, client_id, .. }
                if token_url.as_str() == "https://identity.xero.com/connect/token" && client_id == "xero-client"),
            "{:?}",
            v.auth
        );
        // A custom connection: no refresh token, the client-credentials grant.
        let custom = text.replace("refresh_token = \"env:PATH\"\n", "");
        let c = check(&custom).unwrap();
        let ConnectorConfig::Vendor(v) = &c.source("books").unwrap().connector else {
            panic!("a vendor source")
        };
        assert!(
            matches!(&v.auth, AuthConfig::OAuth2ClientCredentials { .. }),
            "{:?}",
            v.auth
        );
    }

    #[test]
    fn a_lever_source_authenticates_by_api_key_or_by_oauth() {
        let text = r#"[warehouse]
path = "wh.duckdb"

[sources.lever]
type = "lever"
api_key = "env:PATH"
start_date = "2024-01-01"
streams = ["offers", "opportunities"]
"#;
        let c = check(text).unwrap();
        let ConnectorConfig::Vendor(v) = &c.source("lever").unwrap().connector else {
            panic!("a vendor source")
        };
        assert_eq!(v.vendor, Vendor::Lever);
        assert_eq!(v.base_url.as_str(), "https://api.lever.co/v1");
        assert_eq!(v.streams, ["opportunities", "offers"], "vendor order kept");
        assert!(matches!(&v.auth, AuthConfig::BasicApiKey { .. }));

        let oauth = r#"[warehouse]
path = "wh.duckdb"

[sources.lever]
type = "lever"
base_url = "https://api.sandbox.lever.co/v1"
client_id = "lever-client"
client_secret = "env:PATH"
refresh_token = "env:PATH"
"#;
        let c = check(oauth).unwrap();
        let ConnectorConfig::Vendor(v) = &c.source("lever").unwrap().connector else {
            panic!("a vendor source")
        };
        assert!(
            matches!(&v.auth, AuthConfig::OAuth2RefreshToken { token_url, client_id, .. }
                if token_url.as_str() == "https://sandbox-lever.auth0.com/oauth/token" && client_id == "lever-client"),
            "{:?}",
            v.auth
        );
        // A mock's base_url: the token endpoint on the same origin.
        let c = check(&oauth.replace("https://api.sandbox.lever.co/v1", "http://127.0.0.1:9/v1"))
            .unwrap();
        let ConnectorConfig::Vendor(v) = &c.source("lever").unwrap().connector else {
            panic!("a vendor source")
        };
        assert!(
            matches!(&v.auth, AuthConfig::OAuth2RefreshToken { token_url, .. }
            if token_url.as_str() == "http://127.0.0.1:9/oauth/token")
        );
    }

    #[test]
    fn a_salesforce_source_takes_its_my_domain_and_a_refresh_token_or_client_credentials() {
        let text = r#"[warehouse]
path = "wh.duckdb"

[sources.crm]
type = "salesforce"
base_url = "https://acme.my.salesforce.com"
client_id = "sf-client"
client_secret = "env:PATH"
refresh_token = "env:PATH"
streams = ["users", "opportunities"]
"#;
        let c = check(text).unwrap();
        let ConnectorConfig::Vendor(v) = &c.source("crm").unwrap().connector else {
            panic!("a vendor source")
        };
        assert_eq!(v.vendor, Vendor::Salesforce);
        assert_eq!(v.streams, ["opportunities", "users"], "vendor order kept");
        assert_eq!(v.api_version.as_deref(), Some(SALESFORCE_API_VERSION));
        assert!(
            matches!(&v.auth, AuthConfig::OAuth2RefreshToken { token_url, client_id, .. }
                if token_url.as_str() == "https://acme.my.salesforce.com/services/oauth2/token" && client_id == "sf-client"),
            "{:?}",
            v.auth
        );
        // No refresh token: the client-credentials flow; a version set.
        let cc = text.replace(
            "refresh_token = \"env:PATH\"\n",
            "api_version = \"v61.0\"\n",
        );
        let c = check(&cc).unwrap();
        let ConnectorConfig::Vendor(v) = &c.source("crm").unwrap().connector else {
            panic!("a vendor source")
        };
        assert!(
            matches!(&v.auth, AuthConfig::OAuth2ClientCredentials { .. }),
            "{:?}",
            v.auth
        );
        assert_eq!(v.api_version.as_deref(), Some("v61.0"));
        // Without base_url: the login host for both.
        let c =
            check(&text.replace("base_url = \"https://acme.my.salesforce.com\"\n", "")).unwrap();
        let ConnectorConfig::Vendor(v) = &c.source("crm").unwrap().connector else {
            panic!("a vendor source")
        };
        assert_eq!(v.base_url.as_str(), "https://login.salesforce.com/");
        assert!(
            matches!(&v.auth, AuthConfig::OAuth2RefreshToken { token_url, .. }
                if token_url.as_str() == "https://login.salesforce.com/services/oauth2/token")
        );
    }

    #[test]
    fn salesforce_mistakes_have_locations() {
        let text = r#"[warehouse]
path = "wh.duckdb"

[sources.crm]
type = "salesforce"
client_secret = "env:PATH"
api_version = "66"
tenant_id = "70784a63-d24b-46a9-a4db-0e70a274b056"
streams = ["leads"]
"#;
        let e = check(text).unwrap_err().to_string();
        for want in [
            "conveyor.toml:5:8: sources.crm.client_id: missing key `client_id` (required by type = \"salesforce\")",
            "conveyor.toml:7:15: sources.crm.api_version: `66` is not a Salesforce API version (hint: e.g. api_version = \"v66.0\")",
            "conveyor.toml:8:13: sources.crm.tenant_id: not used by type = \"salesforce\"",
            "conveyor.toml:9:12: sources.crm.streams: unknown stream `leads` (hint: type = \"salesforce\" has: opportunities, accounts, users)",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
        // api_version is Salesforce's alone.
        let e = check(
            "[warehouse]\npath = \"wh.duckdb\"\n[sources.crm]\ntype = \"hubspot\"\nclient_id = \"c\"\nclient_secret = \"env:PATH\"\nrefresh_token = \"env:PATH\"\napi_version = \"v66.0\"\n"
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("sources.crm.api_version: not used by type = \"hubspot\""),
            "{e}"
        );
    }

    #[test]
    fn xero_mistakes_have_locations() {
        let text = r#"[warehouse]
path = "wh.duckdb"

[sources.books]
type = "xero"
tenant_id = "Demo Company (NZ)"
client_secret = "env:PATH"
realm_id = "123"
streams = ["invoices", "bills"]
"#;
        let e = check(text).unwrap_err().to_string();
        for want in [
            "conveyor.toml:5:8: sources.books.client_id: missing key `client_id` (required by type = \"xero\") (hint: the OAuth app's client id)",
            "conveyor.toml:6:13: sources.books.tenant_id: `Demo Company (NZ)` is not a tenant id (hint: the Xero organisation's tenant id (a UUID, from GET https://api.xero.com/connections))",
            "conveyor.toml:8:12: sources.books.realm_id: not used by type = \"xero\"",
            "conveyor.toml:9:24: sources.books.streams: unknown stream `bills` (hint: type = \"xero\" has: contacts, invoices, invoice_line_items, payments)",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
        let e = check(&text.replace("tenant_id = \"Demo Company (NZ)\"\n", ""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("conveyor.toml:5:8: sources.books.tenant_id: missing key `tenant_id` (required by type = \"xero\")"),
            "{e}"
        );
    }

    #[test]
    fn lever_mistakes_have_locations() {
        let text = r#"[warehouse]
path = "wh.duckdb"

[sources.lever]
type = "lever"
api_key = "env:PATH"
client_id = "lever-client"
user_id = 7
streams = ["candidates"]
"#;
        let e = check(text).unwrap_err().to_string();
        for want in [
            "conveyor.toml:7:13: sources.lever.client_id: not used with api_key (hint: type = \"lever\" takes api_key (Basic) or client_id, client_secret and refresh_token (OAuth), not both)",
            "conveyor.toml:8:11: sources.lever.user_id: not used by type = \"lever\"",
            "conveyor.toml:9:12: sources.lever.streams: unknown stream `candidates`",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
        // Neither way: said once, at the type.
        let none = text
            .replace("api_key = \"env:PATH\"\n", "")
            .replace("client_id = \"lever-client\"\n", "")
            .replace("user_id = 7\n", "");
        let e = check(&none).unwrap_err().to_string();
        assert!(
            e.contains("conveyor.toml:5:8: sources.lever.api_key: missing key `api_key`"),
            "{e}"
        );
        // OAuth half-configured: each missing key named.
        let half = text
            .replace("api_key = \"env:PATH\"\n", "")
            .replace("user_id = 7\n", "");
        let e = check(&half).unwrap_err().to_string();
        for want in [
            "conveyor.toml:5:8: sources.lever.client_secret: missing key `client_secret`",
            "conveyor.toml:5:8: sources.lever.refresh_token: missing key `refresh_token`",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
        // api_key is Lever's alone.
        let e = check(
            "[warehouse]\npath = \"wh.duckdb\"\n[sources.crm]\ntype = \"hubspot\"\nclient_id = \"c\"\nclient_secret = \"env:PATH\"\nrefresh_token = \"env:PATH\"\napi_key = \"env:PATH\"\n"
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("sources.crm.api_key: not used by type = \"hubspot\""),
            "{e}"
        );
    }

    /// A test CA-less PEM pair: the config only checks the PEM markers
    /// (the connector parses the certificate).
    fn adp_files(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let cert = dir.join("adp.pem");
        let key = dir.join("adp.key");
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleQ==\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        (cert, key)
    }

    fn adp_source(cert: &Path, key: &Path, extra: &str) -> String {
        format!(
            "[warehouse]\npath = \"wh.duckdb\"\n\n[sources.hr]\ntype = \"adp\"\nclient_id = \"adp-client\"\nclient_secret = \"env:PATH\"\nclient_certificate = \"{}\"\nclient_key = \"file:{}\"\n{extra}",
            cert.display(),
            key.display()
        )
    }

    #[test]
    fn an_adp_source_takes_client_credentials_and_a_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = adp_files(dir.path());
        let c = check(&adp_source(
            &cert,
            &key,
            "streams = [\"work_assignments\"]\n",
        ))
        .unwrap();
        let ConnectorConfig::Vendor(v) = &c.source("hr").unwrap().connector else {
            panic!("a vendor source")
        };
        assert_eq!(v.vendor, Vendor::Adp);
        assert_eq!(v.base_url.as_str(), "https://api.adp.com/");
        assert_eq!(v.streams, ["work_assignments"]);
        assert!(
            matches!(&v.auth, AuthConfig::OAuth2ClientCredentials { token_url, client_id, .. }
                if token_url.as_str() == "https://accounts.adp.com/auth/oauth/v2/token" && client_id == "adp-client"),
            "{:?}",
            v.auth
        );
        let identity = v.tls.identity.as_ref().expect("an identity");
        assert_eq!(identity.certificate, cert);
        assert_eq!(identity.key, crate::SecretRef::File(key.clone()));
        assert_eq!(v.tls.ca_certificate, None);

        // A mock: base_url serves the token too; its CA is trusted.
        let ca = dir.path().join("ca.pem");
        std::fs::copy(&cert, &ca).unwrap();
        let mock = adp_source(
            &cert,
            &key,
            "base_url = \"https://127.0.0.1:8443\"\nca_certificate = \"ca.pem\"\n",
        );
        let c = crate::parse(&mock, &dir.path().join("conveyor.toml")).unwrap();
        let ConnectorConfig::Vendor(v) = &c.source("hr").unwrap().connector else {
            panic!("a vendor source")
        };
        assert!(
            matches!(&v.auth, AuthConfig::OAuth2ClientCredentials { token_url, .. }
                if token_url.as_str() == "https://127.0.0.1:8443/auth/oauth/v2/token"),
            "{:?}",
            v.auth
        );
        assert_eq!(
            v.tls.ca_certificate.as_deref(),
            Some(ca.as_path()),
            "relative to the config"
        );
        // Other vendors take no TLS material.
        let c = check("[warehouse]\npath = \"wh.duckdb\"\n[sources.g]\ntype = \"genesys\"\nclient_id = \"c\"\nclient_secret = \"env:PATH\"\n").unwrap();
        let ConnectorConfig::Vendor(v) = &c.source("g").unwrap().connector else {
            panic!("a vendor source")
        };
        assert_eq!(v.tls, crate::ClientTlsConfig::default());
    }

    #[test]
    fn adp_certificate_mistakes_have_locations_and_never_quote_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = adp_files(dir.path());
        // Neither the certificate nor the key: each named at the type.
        let text = "[warehouse]\npath = \"wh.duckdb\"\n\n[sources.hr]\ntype = \"adp\"\nclient_id = \"adp-client\"\nclient_secret = \"env:PATH\"\n";
        let e = check(text).unwrap_err().to_string();
        for want in [
            "conveyor.toml:5:8: sources.hr.client_certificate: missing key `client_certificate` (required by type = \"adp\")",
            "conveyor.toml:5:8: sources.hr.client_key: missing key `client_key` (required by type = \"adp\") (hint: the certificate's private key, by reference",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
        // A certificate path that is not there, a key that is not a key.
        let not_a_key = dir.path().join("notes.txt");
        std::fs::write(&not_a_key, "hunter2-not-a-key").unwrap();
        let missing = dir.path().join("missing.pem");
        let e = check(&adp_source(&missing, &not_a_key, ""))
            .unwrap_err()
            .to_string();
        for want in [
            format!(
                "conveyor.toml:8:22: sources.hr.client_certificate: cannot read {}",
                missing.display()
            ),
            format!(
                "conveyor.toml:9:14: sources.hr.client_key: file:{} holds no PEM private key",
                not_a_key.display()
            ),
        ] {
            assert!(e.contains(&want), "missing {want:?} in:\n{e}");
        }
        assert!(
            !e.contains("hunter2"),
            "the key file's content is never quoted: {e}"
        );
        // A certificate file holding only the key; a key written inline.
        let inline = adp_source(&key, &key, "").replace(
            &format!("file:{}", key.display()),
            "-----BEGIN PRIVATE KEY-----",
        );
        let e = check(&inline).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "sources.hr.client_certificate: {} holds no PEM certificate",
                key.display()
            )),
            "{e}"
        );
        assert!(
            e.contains("sources.hr.client_key: a secret must be a reference"),
            "{e}"
        );
        // Offline (conveyor test), files are named, not read.
        assert!(crate::parse_offline(
            &adp_source(&missing, &missing, ""),
            Path::new("/x/conveyor.toml")
        )
        .is_ok());
        // The keys are ADP's alone.
        let e = check(&format!(
            "[warehouse]\npath = \"wh.duckdb\"\n[sources.g]\ntype = \"genesys\"\nclient_id = \"c\"\nclient_secret = \"env:PATH\"\nclient_certificate = \"{}\"\n",
            cert.display()
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("sources.g.client_certificate: not used by type = \"genesys\""),
            "{e}"
        );
    }

    #[test]
    fn vendor_mistakes_have_locations() {
        let text = r#"[warehouse]
path = "wh.duckdb"

[sources.books]
type = "quickbooks"
client_id = "cid"
client_secret = "env:PATH"
realm_id = "123"
user_id = 5
start_date = "June"
streams = ["invoices", "bills"]
"#;
        let e = check(text).unwrap_err().to_string();
        for want in [
            "conveyor.toml:5:8: sources.books.refresh_token: missing key `refresh_token`",
            "conveyor.toml:9:11: sources.books.user_id: not used by type = \"quickbooks\"",
            "conveyor.toml:10:14: sources.books.start_date: `June` is not a date",
            "conveyor.toml:11:24: sources.books.streams: unknown stream `bills`",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
        // An unknown key stops that source's deserialisation, with its location.
        let e = check(&text.replace("user_id = 5", "colour = \"red\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("conveyor.toml:9:1: sources.books: unknown field `colour`"),
            "{e}"
        );
    }
}
