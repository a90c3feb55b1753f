//! Request authentication: static keys and tokens, and OAuth2 with token
//! refresh and refresh-token rotation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use conveyor_config::{AuthConfig, KeyLocation, Secret};
use conveyor_plugin_api::{ConnectorError, CredentialStore, ErrorKind};
use tokio::time::Instant;

use super::redact::Redactor;

/// Refresh an access token this long before it expires, so a request is
/// not sent with a token that dies in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

pub enum AuthProvider {
    None,
    Header {
        name: String,
        value: Secret,
    },
    Query {
        name: String,
        value: Secret,
    },
    Basic {
        username: String,
        password: Secret,
    },
    Bearer(Secret),
    OAuth(Box<OAuthClient>),
    /// AWS SigV4: each request signed as it is sent.
    AwsSigV4(Box<super::sigv4::SigV4Signer>),
}

impl AuthProvider {
    /// Resolves the configured secrets. Every secret value is registered
    /// with `redactor` so it can never appear in an error.
    pub fn from_config(
        cfg: &AuthConfig,
        store_key: String,
        store: Arc<dyn CredentialStore>,
        redactor: &Redactor,
    ) -> Result<Self, ConnectorError> {
        // OAuth clients may authenticate by Basic (`client_id:client_secret`
        // base64-encoded) at the token endpoint, whatever the body style.
        let client_pair = |id: &str, secret: Secret| {
            redactor.add_credential_pair(id, secret.expose());
            secret
        };
        let resolve = |r: &conveyor_config::SecretRef| {
            let s = r
                .resolve()
                .map_err(|e| ConnectorError::new(ErrorKind::Config, e))?;
            redactor.add_secret(s.expose());
            Ok::<_, ConnectorError>(s)
        };
        Ok(match cfg {
            AuthConfig::None => AuthProvider::None,
            AuthConfig::ApiKey {
                location: KeyLocation::Header(name),
                key,
            } => AuthProvider::Header {
                name: name.clone(),
                value: resolve(key)?,
            },
            AuthConfig::ApiKey {
                location: KeyLocation::Query(name),
                key,
            } => {
                redactor.add_param(name);
                AuthProvider::Query {
                    name: name.clone(),
                    value: resolve(key)?,
                }
            }
            AuthConfig::Basic { username, password } => {
                let password = resolve(password)?;
                // Sent as `Basic base64(user:password)`: that form too.
                redactor.add_credential_pair(username, password.expose());
                AuthProvider::Basic {
                    username: username.clone(),
                    password,
                }
            }
            AuthConfig::Bearer { token } => AuthProvider::Bearer(resolve(token)?),
            AuthConfig::BasicApiKey { key } => {
                let key = resolve(key)?;
                // Sent as `Basic base64(key:)`: that form too.
                redactor.add_secret_user(key.expose());
                AuthProvider::Basic {
                    username: key.expose().to_string(),
                    password: Secret::new(String::new()),
                }
            }
            AuthConfig::OAuth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => AuthProvider::OAuth(Box::new(OAuthClient {
                token_url: token_url.clone(),
                client_id: client_id.clone(),
                client_secret: client_pair(client_id, resolve(client_secret)?),
                grant: Grant::ClientCredentials {
                    scope: scope.clone(),
                },
                store,
                store_key,
                redactor: redactor.clone(),
                cached: tokio::sync::Mutex::new(None),
                extra_fields: Vec::new(),
                body: TokenBody::default(),
                instance_url: std::sync::Mutex::new(None),
                until_refused: AtomicBool::new(false),
                tls_peer: String::new(),
            })),
            AuthConfig::OAuth2RefreshToken {
                token_url,
                client_id,
                client_secret,
                refresh_token,
            } => AuthProvider::OAuth(Box::new(OAuthClient {
                token_url: token_url.clone(),
                client_id: client_id.clone(),
                client_secret: client_pair(client_id, resolve(client_secret)?),
                grant: Grant::RefreshToken {
                    configured: resolve(refresh_token)?,
                },
                store,
                store_key,
                redactor: redactor.clone(),
                cached: tokio::sync::Mutex::new(None),
                extra_fields: Vec::new(),
                body: TokenBody::default(),
                instance_url: std::sync::Mutex::new(None),
                until_refused: AtomicBool::new(false),
                tls_peer: String::new(),
            })),
            AuthConfig::AwsSigV4 {
                access_key_id,
                secret_access_key,
                session_token,
                region,
                service,
            } => AuthProvider::AwsSigV4(Box::new(super::sigv4::SigV4Signer::new(
                access_key_id.clone(),
                resolve(secret_access_key)?,
                session_token.as_ref().map(&resolve).transpose()?,
                region.clone(),
                service.clone(),
            ))),
        })
    }

    /// Adds credentials to a request.
    pub async fn apply(
        &self,
        http: &reqwest::Client,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, ConnectorError> {
        Ok(match self {
            AuthProvider::None => req,
            AuthProvider::Header { name, value } => req.header(name.as_str(), value.expose()),
            AuthProvider::Query { name, value } => req.query(&[(name.as_str(), value.expose())]),
            AuthProvider::Basic { username, password } => {
                req.basic_auth(username, Some(password.expose()))
            }
            AuthProvider::Bearer(t) => req.bearer_auth(t.expose()),
            AuthProvider::OAuth(o) => req.bearer_auth(o.access_token(http).await?.expose()),
            AuthProvider::AwsSigV4(signer) => {
                // The signature covers the finished request (headers and
                // body), so it is built, signed and handed back.
                let (client, built) = req.build_split();
                let mut built = built.map_err(|e| {
                    ConnectorError::new(
                        ErrorKind::Config,
                        format!("cannot build the request: {}", without_url(&e)),
                    )
                })?;
                signer.sign(&mut built, std::time::SystemTime::now())?;
                reqwest::RequestBuilder::from_parts(client, built)
            }
        })
    }

    /// Vendor specifics of the token request: extra fields and the body
    /// style. No effect on non-OAuth providers.
    pub fn with_token_request(
        mut self,
        extra_fields: Vec<(String, String)>,
        body: TokenBody,
    ) -> Self {
        if let AuthProvider::OAuth(o) = &mut self {
            o.extra_fields = extra_fields;
            o.body = body;
        }
        self
    }

    /// Who refuses a client certificate at the token endpoint, in errors
    /// (the client's TLS peer name). No effect on non-OAuth providers.
    pub(crate) fn name_tls_peer(&mut self, peer: &str) {
        if let AuthProvider::OAuth(o) = self {
            o.tls_peer = peer.to_string();
        }
    }

    /// The API host the token endpoint named with the current token
    /// (Salesforce's `instance_url`), fetching a token first if none is
    /// held; `None` for other providers and answers without one.
    pub async fn instance_url(
        &self,
        http: &reqwest::Client,
    ) -> Result<Option<url::Url>, ConnectorError> {
        match self {
            AuthProvider::OAuth(o) => {
                o.access_token(http).await?;
                Ok(o.instance_url
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone())
            }
            _ => Ok(None),
        }
    }

    /// A token answer without a lifetime (Salesforce's has no `expires_in`)
    /// keeps the token until the API refuses it (a 401 then fetches a new
    /// one once), instead of assuming an hour. No effect on non-OAuth.
    pub fn keep_tokens_until_refused(&self) {
        if let AuthProvider::OAuth(o) = self {
            o.until_refused.store(true, Ordering::Relaxed);
        }
    }

    /// Forgets a cached access token after the API refused it. Returns
    /// whether a new token can be fetched (only OAuth can).
    pub async fn invalidate(&self) -> bool {
        match self {
            AuthProvider::OAuth(o) => {
                *o.cached.lock().await = None;
                true
            }
            _ => false,
        }
    }
}

enum Grant {
    ClientCredentials { scope: Option<String> },
    RefreshToken { configured: Secret },
}

/// How a token request is sent; vendors differ.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TokenBody {
    /// Form body, client authenticated by HTTP Basic (RFC 6749 default).
    #[default]
    FormWithBasic,
    /// JSON body carrying `client_id` and `client_secret` (Gusto).
    JsonWithCredentials,
    /// Form body carrying `client_id` and `client_secret` (HubSpot).
    FormWithCredentials,
}

pub struct OAuthClient {
    token_url: url::Url,
    client_id: String,
    client_secret: Secret,
    grant: Grant,
    store: Arc<dyn CredentialStore>,
    /// Where a rotated refresh token is kept, e.g. `source.refresh_token`.
    store_key: String,
    redactor: Redactor,
    /// The access token and when to renew it (`None`: when refused).
    cached: tokio::sync::Mutex<Option<(Secret, Option<Instant>)>>,
    /// Extra token-request fields, e.g. Greenhouse's `sub` (the user id).
    extra_fields: Vec<(String, String)>,
    body: TokenBody,
    /// The last token answer's `instance_url`, where the API is.
    instance_url: std::sync::Mutex<Option<url::Url>>,
    /// See [`AuthProvider::keep_tokens_until_refused`].
    until_refused: AtomicBool,
    /// See [`AuthProvider::name_tls_peer`].
    tls_peer: String,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    /// Salesforce: the org's API host, which the token is good for.
    #[serde(default)]
    instance_url: Option<String>,
}

impl OAuthClient {
    async fn access_token(&self, http: &reqwest::Client) -> Result<Secret, ConnectorError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, expires)) = cached.as_ref() {
            if expires.is_none_or(|e| Instant::now() + EXPIRY_MARGIN < e) {
                return Ok(token.clone());
            }
        }
        let (token, ttl) = self.fetch_token(http).await?;
        *cached = Some((token.clone(), ttl.map(|t| Instant::now() + t)));
        Ok(token)
    }

    /// The refresh token to use: the last rotated one if stored, else the
    /// configured one.
    fn current_refresh_token(&self, configured: &Secret) -> Result<Secret, ConnectorError> {
        match self.store.load(&self.store_key)? {
            Some(t) => {
                self.redactor.add_secret(&t);
                Ok(Secret::new(t))
            }
            None => Ok(configured.clone()),
        }
    }

    async fn fetch_token(
        &self,
        http: &reqwest::Client,
    ) -> Result<(Secret, Option<Duration>), ConnectorError> {
        let mut form: Vec<(&str, String)> = Vec::new();
        match &self.grant {
            Grant::ClientCredentials { scope } => {
                form.push(("grant_type", "client_credentials".into()));
                if let Some(s) = scope {
                    form.push(("scope", s.clone()));
                }
            }
            Grant::RefreshToken { configured } => {
                form.push(("grant_type", "refresh_token".into()));
                form.push((
                    "refresh_token",
                    self.current_refresh_token(configured)?.expose().to_string(),
                ));
            }
        }
        form.extend(
            self.extra_fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone())),
        );
        let url = self.redactor.url(&self.token_url);
        let request = http
            .post(self.token_url.clone())
            .header("Accept", "application/json");
        let request = match self.body {
            TokenBody::FormWithBasic => {
                let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    self.client_id,
                    self.client_secret.expose()
                ));
                request
                    .header("Authorization", format!("Basic {basic}"))
                    .form(&form)
            }
            TokenBody::FormWithCredentials => {
                form.push(("client_id", self.client_id.clone()));
                form.push(("client_secret", self.client_secret.expose().to_string()));
                request.form(&form)
            }
            TokenBody::JsonWithCredentials => {
                let mut obj: serde_json::Map<String, serde_json::Value> = form
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
                    .collect();
                obj.insert("client_id".into(), self.client_id.clone().into());
                obj.insert(
                    "client_secret".into(),
                    self.client_secret.expose().to_string().into(),
                );
                request.json(&obj)
            }
        };
        let resp = request.send().await.map_err(|e| {
            if let Some(why) = super::tls::refused_certificate(&e) {
                return super::tls::refusal_error(&self.tls_peer, "POST", &url, why);
            }
            // A redirect loop does not end by waiting.
            let kind = if e.is_redirect() {
                ErrorKind::Http
            } else {
                ErrorKind::Transient
            };
            ConnectorError::new(
                kind,
                format!("POST {url}: {}", self.redactor.scrub(&without_url(&e))),
            )
        })?;
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        if !status.is_success() {
            let snippet = self.redactor.snippet(&body);
            let kind = if status.is_server_error() {
                ErrorKind::Transient
            } else {
                ErrorKind::Auth
            };
            return Err(ConnectorError::new(
                kind,
                format!("token request POST {url} failed: HTTP {status}: {snippet}"),
            ));
        }
        let not_understood = |e: serde_json::Error| {
            ConnectorError::new(
                ErrorKind::Auth,
                format!(
                    "token response from {url} is not understood: {}",
                    self.redactor.scrub(&e.to_string())
                ),
            )
        };
        let value: serde_json::Value = serde_json::from_slice(&body).map_err(not_understood)?;
        // Every token in the answer is a secret from here on, before any
        // error about the answer's shape could quote one.
        for field in ["access_token", "refresh_token", "id_token"] {
            if let Some(t) = value.get(field).and_then(serde_json::Value::as_str) {
                self.redactor.add_secret(t);
            }
        }
        let parsed: TokenResponse = serde_json::from_value(value).map_err(not_understood)?;
        self.redactor.add_secret(&parsed.access_token);
        if let Some(new_refresh) = &parsed.refresh_token {
            self.redactor.add_secret(new_refresh);
            // Rotation: the old refresh token may already be revoked, so the
            // new one must be durable before the access token is used.
            if let Grant::RefreshToken { configured } = &self.grant {
                if *new_refresh != self.current_refresh_token(configured)?.expose() {
                    self.store.save(&self.store_key, new_refresh)?;
                    tracing::info!(token_url = %url, "stored rotated refresh token");
                }
            }
        }
        if let Some(at) = &parsed.instance_url {
            let at = url::Url::parse(at).map_err(|e| {
                ConnectorError::new(
                    ErrorKind::Auth,
                    format!("token response from {url}: instance_url `{at}` is not a URL: {e}"),
                )
            })?;
            *self.instance_url.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
        }
        let ttl = lifetime(
            parsed.expires_in,
            parsed.expires_at.as_deref(),
            self.until_refused.load(Ordering::Relaxed),
        );
        Ok((Secret::new(parsed.access_token), ttl))
    }
}

/// How long a token lives: as the answer says (`expires_in`, or an
/// RFC 3339 `expires_at`); otherwise an hour, or until refused (`None`)
/// for APIs whose tokens carry no lifetime by design.
fn lifetime(
    expires_in: Option<u64>,
    expires_at: Option<&str>,
    until_refused: bool,
) -> Option<Duration> {
    let said = expires_in.map(Duration::from_secs).or_else(|| {
        let at = chrono::DateTime::parse_from_rfc3339(expires_at?).ok()?;
        let secs = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
        Some(Duration::from_secs(secs.max(0) as u64))
    });
    match said {
        Some(t) => Some(t),
        None if until_refused => None,
        None => Some(Duration::from_secs(3600)),
    }
}

/// A reqwest error's text without the URL it embeds (which may carry a
/// query secret); the caller prints a redacted URL itself.
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(u) = e.url() {
        text = text.replace(u.as_str(), "<url>");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_without_a_lifetime_lasts_an_hour_or_until_refused() {
        assert_eq!(
            lifetime(Some(1800), None, true),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(lifetime(None, None, false), Some(Duration::from_secs(3600)));
        assert_eq!(lifetime(None, None, true), None);
        let past = lifetime(None, Some("2000-01-01T00:00:00Z"), true);
        assert_eq!(past, Some(Duration::ZERO));
    }
}
