//! Connector errors with a machine-readable kind the scheduler acts on.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The configuration cannot work (bad URL, unknown stream).
    Config,
    /// Credentials were refused.
    Auth,
    /// A transient failure that outlived the retries (timeouts, 5xx, 429).
    Transient,
    /// The API answered with an error status that retrying cannot fix.
    Http,
    /// The response could not be understood (malformed JSON, wrong shape).
    Data,
    /// The host (warehouse, sink) failed.
    Host,
    /// A plugin broke its contract: it panicked, was poisoned by an earlier
    /// panic, or sent something the ABI does not allow.
    Plugin,
    /// The account has no such data, or the credentials lack the permission
    /// to read it: the API refused the stream's own endpoint (403, or 404
    /// where the path is fixed), e.g. a Genesys org without the analytics
    /// permission or a HubSpot app without a scope. Retrying cannot fix it;
    /// leaving the stream out of the source's `streams` (or granting the
    /// permission) does. Added after the first ABI release: a host that
    /// predates it reads the code as `Plugin` (see `ffi::kind_from_code`).
    Unavailable,
}

/// A connector failure. The message must never contain a secret: URLs are
/// stripped of credentials and query secrets before they get here.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConnectorError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ConnectorError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ConnectorError {
            kind,
            message: message.into(),
        }
    }
    /// Worth running again later without a config change.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Transient)
    }
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
