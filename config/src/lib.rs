//! Conveyor's configuration: the TOML model, its validation, and secret references.
//!
//! Loading happens in two layers (the Vector config-compiler pattern): each
//! top-level section is deserialised on its own into raw serde structs that
//! keep spans, so one broken source does not hide the problems of another;
//! the raw structs are then validated into the [`model`] types. Every problem
//! found is reported at once as a [`Diagnostic`] with `FILE:LINE:COL`.

pub mod actions;
pub mod catalog_db;
pub mod client_tls;
pub mod cluster;
mod database;
pub mod diagnostics;
pub mod health;
mod http;
pub mod mapping;
mod measure;
pub mod model;
pub mod publish;
mod raw;
pub mod reconcile;
pub mod reports;
mod rest;
pub mod rules;
pub mod secret;
pub mod server;
mod validate;
pub mod vendor;
mod writable;

use std::path::{Path, PathBuf};

pub use actions::{
    EmailAction, SmtpConfig, SmtpTls, Template, WebhookAction, BUILTIN_VARIABLES,
    DEFAULT_MAX_ATTEMPTS,
};
pub use catalog_db::PostgresEndpoint;
pub use client_tls::{ClientIdentity, ClientTlsConfig};
pub use cluster::{ClusterConfig, DEFAULT_LEASE};
pub use database::{
    DatabaseEngine, DatabaseRelation, DatabaseSourceConfig, DatabaseStream, DatabaseTlsMode,
    DEFAULT_CHUNK_ROWS,
};
pub use diagnostics::{line_col, ConfigErrors, Diagnostic};
pub use health::{HealthConfig, DEFAULT_FAILED_RUNS};
pub use mapping::{
    ModelConfig, PresetUse, ViewMapping, MAPPED_VIEWS, MODEL_PRESETS, PRESET_OPTIONS,
};
pub use model::*;
pub use publish::{PublishConfig, DEFAULT_CATALOG_NAME};
pub use reconcile::{
    Cardinality, ComparePair, KeyPair, Normalize, Pairing, ReconcileConfig, Relation, Tolerance,
};
pub use reports::{
    Goal, Kpi, ReportConfig, ReportSection, SectionKind, Series, DEFAULT_REPORT_PERIODS,
};
pub use rules::{Direction, Peer, PeerCondition, RuleConfig};
pub use secret::{Secret, SecretRef};
pub use server::{PostgresConfig, ServerConfig, TlsFiles, DEFAULT_LISTEN, DEFAULT_POSTGRES_LISTEN};
pub use validate::parse_cron;
pub use vendor::{AmazonConnectSettings, Vendor, VendorSourceConfig, SALESFORCE_API_VERSION};

/// Where the config file is looked for when neither `--config` nor
/// `CONVEYOR_CONFIG` names one.
pub const DEFAULT_CONFIG_FILE: &str = "conveyor.toml";

/// Reads and validates the config file at `path`, resolving every secret
/// reference. Returns every problem found, not just the first.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    validate::validate(&read(path)?, path, validate::Reach::Everything)
}

/// Reads and validates the config at `path` without resolving its secret
/// references (see [`parse_offline`]).
pub fn load_offline(path: &Path) -> Result<Config, ConfigErrors> {
    parse_offline(&read(path)?, path)
}

fn read(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![Diagnostic::whole_file(
            path,
            format!("cannot read config file: {e}"),
            Some("pass --config PATH or set CONVEYOR_CONFIG".into()),
        )])
    })
}

/// Validates config `text` as if read from `path` (relative paths in the
/// config resolve against the file's folder), resolving its secrets. Unlike
/// [`load`], it does not look at the warehouse's folder: the text need not
/// describe this machine.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    validate::validate(text, path, validate::Reach::Secrets)
}

/// Validates config `text` like [`parse`] but leaves secret references
/// unresolved (an unset variable or a missing file is not an error, and no
/// secret is read): for offline uses such as `conveyor test`.
pub fn parse_offline(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    validate::validate(text, path, validate::Reach::Offline)
}

/// The fuzz target's body (`fuzz/fuzz_targets/config.rs`), here so the
/// seed-corpus replay test (`config/tests/fuzz_corpus.rs`) runs the same
/// code without cargo-fuzz. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    use std::path::Path;

    /// Where fuzzed text claims to come from: a folder that does not exist,
    /// so nothing relative to it can be found, and offline, so no secret
    /// is resolved and no warehouse folder is probed.
    pub const FUZZ_PATH: &str = "/nonexistent/conveyor-fuzz/conveyor.toml";

    /// Validates `data` as a config offline. Panics only when the config
    /// code does, or when an error is not located inside the text (a
    /// `FILE:LINE:COL` past its end, or a whole-file error for text that
    /// was read); returns whether the config was accepted.
    pub fn fuzz_one(data: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(data) else {
            return false;
        };
        match crate::parse_offline(text, Path::new(FUZZ_PATH)) {
            Ok(_) => true,
            Err(errors) => {
                assert!(!errors.0.is_empty(), "a rejected config names a problem");
                let lines = text.split('\n').count();
                for d in &errors.0 {
                    assert!(
                        d.line >= 1 && d.line <= lines && d.col >= 1,
                        "diagnostic outside the text ({lines} lines): {d}"
                    );
                    let line_len = text
                        .split('\n')
                        .nth(d.line - 1)
                        .map_or(0, |l| l.chars().count());
                    assert!(
                        d.col <= line_len + 1,
                        "column past the line's end ({line_len}): {d}"
                    );
                    assert!(d.to_string().starts_with(FUZZ_PATH), "{d}");
                }
                false
            }
        }
    }
}

/// Resolves relative paths in the config against the config file's folder,
/// so `conveyor -c /etc/conveyor/conveyor.toml` works from any directory.
pub(crate) fn resolve_relative(config_path: &Path, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        return p;
    }
    match config_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(p),
        _ => p,
    }
}
