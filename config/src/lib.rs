//! Conveyor's configuration: the TOML model, its validation, and secret references.
//!
//! Loading happens in two layers (the Vector config-compiler pattern): each
//! top-level section is deserialised on its own into raw serde structs that
//! keep spans, so one broken source does not hide the problems of another;
//! the raw structs are then validated into the [`model`] types. Every problem
//! found is reported at once as a [`Diagnostic`] with `FILE:LINE:COL`.

pub mod actions;
pub mod diagnostics;
pub mod health;
pub mod mapping;
mod measure;
pub mod model;
mod raw;
pub mod reconcile;
pub mod rules;
pub mod secret;
pub mod server;
mod validate;
pub mod vendor;

use std::path::{Path, PathBuf};

pub use actions::{
    EmailAction, SmtpConfig, SmtpTls, Template, WebhookAction, BUILTIN_VARIABLES,
    DEFAULT_MAX_ATTEMPTS,
};
pub use diagnostics::{ConfigErrors, Diagnostic};
pub use health::{HealthConfig, DEFAULT_FAILED_RUNS};
pub use mapping::{
    ModelConfig, PresetUse, ViewMapping, MAPPED_VIEWS, MODEL_PRESETS, PRESET_OPTIONS,
};
pub use model::*;
pub use reconcile::{
    Cardinality, ComparePair, KeyPair, Normalize, Pairing, ReconcileConfig, Relation, Tolerance,
};
pub use rules::{Direction, Peer, PeerCondition, RuleConfig};
pub use secret::{Secret, SecretRef};
pub use server::{PostgresConfig, ServerConfig, TlsFiles, DEFAULT_LISTEN, DEFAULT_POSTGRES_LISTEN};
pub use validate::parse_cron;
pub use vendor::{Vendor, VendorSourceConfig};

/// Where the config file is looked for when neither `--config` nor
/// `CONVEYOR_CONFIG` names one.
pub const DEFAULT_CONFIG_FILE: &str = "conveyor.toml";

/// Reads and validates the config file at `path`, resolving every secret
/// reference. Returns every problem found, not just the first.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    parse(&read(path)?, path)
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
/// config resolve against the file's folder).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    validate::validate(text, path, true)
}

/// Validates config `text` like [`parse`] but leaves secret references
/// unresolved (an unset variable or a missing file is not an error, and no
/// secret is read): for offline uses such as `conveyor test`.
pub fn parse_offline(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    validate::validate(text, path, false)
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
