//! Raw serde structs for `[warehouse]` and `[plugins]`, with spans kept for
//! diagnostics (other sections keep their raw structs in their own module:
//! `rest/raw.rs`, `vendor.rs`, `server.rs` …).
//!
//! Unknown keys are rejected (`deny_unknown_fields`).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWarehouse {
    pub path: Option<S<String>>,
    pub memory_limit: Option<S<String>>,
    pub threads: Option<S<u64>>,
}

/// `[plugins]`: where connector plugins are found, and their pinned checksums.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlugins {
    pub dirs: Option<Vec<S<String>>>,
    pub sha256: Option<BTreeMap<String, S<String>>>,
}
