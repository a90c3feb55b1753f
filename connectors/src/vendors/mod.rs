//! Vendor connectors: thin layers over the HTTP toolkit that know one
//! vendor's API (paging style, auth flow, error bodies, record shapes) and
//! emit typed tables with primary keys.
//!
//! Each vendor is one module; [`Vendor::ALL`] (in `conveyor-config`) is the
//! list to grep, and [`build`] matches it exhaustively. Retries,
//! rate limits, token refresh and paging live in [`crate::http`] and
//! [`crate::rest::pager`]; [`read`] is the one read loop they share.

pub mod adp;
pub mod amazon_connect;
pub mod genesys;
pub mod greenhouse;
pub mod gusto;
pub mod hubspot;
pub mod lever;
pub mod quickbooks;
pub(crate) mod read;
pub mod salesforce;
pub mod table;
pub mod xero;
pub mod zendesk_talk;

use std::sync::Arc;

use conveyor_config::{Vendor, VendorSourceConfig};
use conveyor_plugin_api::{
    Connector, ConnectorError, CredentialStore, ErrorKind, StreamDescriptor,
};
use serde_json::Value;

use crate::http::client::{ErrorMessageFn, ErrorReaderFn};
use crate::http::{AuthProvider, ClientTls, HttpClient, Redactor, TokenBody};
use table::Table;

/// The `Connector` a vendor over [`Base`] is: the base's streams, and a read
/// whose errors [`Base::explain`] words. The vendor writes only its
/// `read_stream`.
macro_rules! connector_over_base {
    ($vendor:ty) => {
        #[async_trait::async_trait]
        impl conveyor_plugin_api::Connector for $vendor {
            fn streams(&self) -> Vec<conveyor_plugin_api::StreamDescriptor> {
                self.base.streams()
            }

            async fn read(
                &self,
                stream: &str,
                state: Option<conveyor_plugin_api::Json>,
                sink: &mut dyn conveyor_plugin_api::RecordSink,
                cancel: &conveyor_plugin_api::CancelFlag,
            ) -> Result<(), conveyor_plugin_api::ConnectorError> {
                self.read_stream(stream, state, sink, cancel)
                    .await
                    .map_err(|e| self.base.explain(stream, e))
            }
        }
    };
}
pub(crate) use connector_over_base;

/// Builds the connector for a vendor source.
pub fn build(
    source: &str,
    cfg: &VendorSourceConfig,
    credentials: Arc<dyn CredentialStore>,
) -> Result<Box<dyn Connector>, ConnectorError> {
    match cfg.vendor {
        Vendor::Greenhouse => Ok(Box::new(greenhouse::Greenhouse::new(
            source,
            cfg.clone(),
            credentials,
        )?)),
        Vendor::QuickBooks => Ok(Box::new(quickbooks::QuickBooks::new(
            source,
            cfg.clone(),
            credentials,
        )?)),
        Vendor::Gusto => Ok(Box::new(gusto::Gusto::new(
            source,
            cfg.clone(),
            credentials,
        )?)),
        Vendor::ZendeskTalk => Ok(Box::new(zendesk_talk::ZendeskTalk::new(
            source,
            cfg.clone(),
            credentials,
        )?)),
        Vendor::HubSpot => Ok(Box::new(hubspot::HubSpot::new(
            source,
            cfg.clone(),
            credentials,
        )?)),
        Vendor::Genesys => Ok(Box::new(genesys::Genesys::new(
            source,
            cfg.clone(),
            credentials,
        )?)),
        Vendor::Xero => Ok(Box::new(xero::Xero::new(source, cfg.clone(), credentials)?)),
        Vendor::Lever => Ok(Box::new(lever::Lever::new(
            source,
            cfg.clone(),
            credentials,
        )?)),
        Vendor::Salesforce => Ok(Box::new(salesforce::Salesforce::new(
            source,
            cfg.clone(),
            credentials,
        )?)),
        Vendor::Adp => Ok(Box::new(adp::Adp::new(source, cfg.clone(), credentials)?)),
        Vendor::AmazonConnect => Ok(Box::new(amazon_connect::AmazonConnect::new(
            source,
            cfg.clone(),
            credentials,
        )?)),
    }
}

/// What a vendor adds to the toolkit's client.
pub(crate) struct ClientSpec {
    pub headers: Vec<(String, String)>,
    pub token_fields: Vec<(String, String)>,
    pub token_body: TokenBody,
    pub error_message: ErrorMessageFn,
    /// For a vendor that names its errors in a header (AWS).
    pub error_reader: Option<ErrorReaderFn>,
}

/// The toolkit client for a vendor source: its auth (rotated refresh
/// tokens kept under `<source>.refresh_token`), rate budget and errors.
pub(crate) fn client(
    source: &str,
    cfg: &VendorSourceConfig,
    credentials: Arc<dyn CredentialStore>,
    spec: ClientSpec,
) -> Result<Arc<HttpClient>, ConnectorError> {
    let redactor = Redactor::default();
    let auth = AuthProvider::from_config(
        &cfg.auth,
        format!("{source}.refresh_token"),
        credentials,
        &redactor,
    )?
    .with_token_request(spec.token_fields, spec.token_body);
    let host = crate::http::ratelimit::budget_key(&cfg.base_url);
    let tls = ClientTls::load(&cfg.tls, tls_peer(cfg.vendor), &redactor)?;
    let mut client =
        HttpClient::with_tls(cfg.http.clone(), &host, auth, spec.headers, redactor, tls)?
            .with_error_message(spec.error_message);
    if let Some(reader) = spec.error_reader {
        client = client.with_error_reader(reader);
    }
    Ok(Arc::new(client))
}

/// Who refuses a client certificate, in errors; only vendors that take
/// TLS material (`VendorSourceConfig::tls`) need a name.
fn tls_peer(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Adp => "ADP",
        _ => "the server",
    }
}

/// What every vendor connector holds: its source's name and config, the
/// tables selected, and the toolkit client.
pub(crate) struct Base {
    pub source: String,
    pub cfg: VendorSourceConfig,
    pub tables: Vec<&'static Table>,
    pub client: Arc<HttpClient>,
}

impl Base {
    pub fn new(
        source: &str,
        cfg: VendorSourceConfig,
        credentials: Arc<dyn CredentialStore>,
        spec: ClientSpec,
        tables: &'static [Table],
    ) -> Result<Base, ConnectorError> {
        let client = client(source, &cfg, credentials, spec)?;
        Ok(Base {
            source: source.to_string(),
            tables: selected(&cfg, tables),
            cfg,
            client,
        })
    }

    /// The selected tables as streams.
    pub fn streams(&self) -> Vec<StreamDescriptor> {
        self.tables.iter().map(|t| t.descriptor()).collect()
    }

    /// The table read by `stream`, or a config error naming the source.
    pub fn table(&self, stream: &str) -> Result<&'static Table, ConnectorError> {
        table(&self.source, &self.tables, stream)
    }

    /// `e` with what to do about it when the API refused the stream for
    /// this account ([`ErrorKind::Unavailable`]); other errors unchanged.
    /// Every error is scrubbed of secrets here, as it leaves the connector.
    pub fn explain(&self, stream: &str, e: ConnectorError) -> ConnectorError {
        let e = self.client.redactor().error(e);
        if e.kind != ErrorKind::Unavailable {
            return e;
        }
        let others: Vec<String> = self
            .tables
            .iter()
            .filter(|t| t.name != stream)
            .map(|t| format!("\"{}\"", t.name))
            .collect();
        let leave_out = if others.is_empty() {
            format!(
                "it is the only stream selected, so remove [sources.{}] or select others ({})",
                self.source,
                self.cfg.vendor.streams().join(", ")
            )
        } else {
            format!(
                "set streams = [{}] in [sources.{}]",
                others.join(", "),
                self.source
            )
        };
        ConnectorError::new(
            ErrorKind::Unavailable,
            format!(
                "source {}: stream `{stream}` is not available to these credentials ({}). \
                 The account has no such data, or the credentials lack the permission (scope, \
                 role) to read it. If this account is not meant to have it, leave the stream \
                 out: {leave_out}; otherwise grant the permission (and check the account id) \
                 and sync again.",
                self.source, e.message
            ),
        )
    }
}

/// The selected tables of a vendor, in read order.
pub(crate) fn selected(cfg: &VendorSourceConfig, tables: &'static [Table]) -> Vec<&'static Table> {
    tables
        .iter()
        .filter(|t| cfg.streams.iter().any(|s| s == t.name))
        .collect()
}

/// The table read by `stream`, or a config error naming the source.
pub(crate) fn table<'t>(
    source: &str,
    tables: &[&'t Table],
    stream: &str,
) -> Result<&'t Table, ConnectorError> {
    tables
        .iter()
        .copied()
        .find(|t| t.name == stream)
        .ok_or_else(|| {
            ConnectorError::new(
                ErrorKind::Config,
                format!("source {source} has no stream `{stream}` selected"),
            )
        })
}

/// `base` + `/path`, joined as text (Url::join would drop a last segment
/// without a trailing slash).
pub(crate) fn endpoint(base: &url::Url, path: &str) -> Result<url::Url, ConnectorError> {
    let joined = format!(
        "{}/{}",
        base.as_str().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url::Url::parse(&joined)
        .map_err(|e| ConnectorError::new(ErrorKind::Config, format!("bad URL {joined}: {e}")))
}

/// The OAuth error fields many token and API errors share.
pub(crate) fn oauth_error(v: &Value) -> Option<String> {
    let e = v.get("error")?.as_str()?;
    Some(match v.get("error_description").and_then(Value::as_str) {
        Some(d) => format!("{e}: {d}"),
        None => e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_vendor_declares_the_streams_config_offers() {
        for v in Vendor::ALL {
            let declared: Vec<&str> = match v {
                Vendor::Greenhouse => greenhouse::TABLES.iter().map(|t| t.name).collect(),
                Vendor::QuickBooks => quickbooks::TABLES.iter().map(|t| t.name).collect(),
                Vendor::Gusto => gusto::TABLES.iter().map(|t| t.name).collect(),
                Vendor::ZendeskTalk => zendesk_talk::TABLES.iter().map(|t| t.name).collect(),
                Vendor::HubSpot => hubspot::TABLES.iter().map(|t| t.name).collect(),
                Vendor::Genesys => genesys::TABLES.iter().map(|t| t.name).collect(),
                Vendor::Xero => xero::TABLES.iter().map(|t| t.name).collect(),
                Vendor::Lever => lever::TABLES.iter().map(|t| t.name).collect(),
                Vendor::Salesforce => salesforce::TABLES.iter().map(|t| t.name).collect(),
                Vendor::Adp => adp::TABLES.iter().map(|t| t.name).collect(),
                Vendor::AmazonConnect => amazon_connect::TABLES.iter().map(|t| t.name).collect(),
            };
            assert_eq!(declared, v.streams(), "{v:?}");
        }
    }
}
