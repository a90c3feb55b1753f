//! Connector plugins in the daemon: finding a source's plugin library in the
//! configured folders, checking its pinned SHA-256, loading it once per
//! process (libraries are never unloaded), and opening instances.
//!
//! Everything here fails with an error, never a panic: a plugin that cannot
//! be found, loaded or opened fails its own source's run, and every other
//! source keeps running.

mod discover;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use conveyor_config::PluginSourceConfig;
use conveyor_plugin_api::host::{PluginConnector, PluginLibrary, Redact};
use conveyor_plugin_api::{Connector, ConnectorError, ErrorKind, Json};

pub use discover::{find_library, library_file_name, list_dir};

/// A failure to find, verify or load a plugin library.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin `{name}` not found: no {file} in {searched}")]
    NotFound {
        name: String,
        file: String,
        searched: String,
    },
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error(
        "{path}: refused: its SHA-256 is {actual} but [plugins.sha256] pins {name} = \"{pinned}\" \
         (if you upgraded the plugin on purpose, update the pin; otherwise the file was replaced)"
    )]
    Checksum {
        path: PathBuf,
        name: String,
        pinned: String,
        actual: String,
    },
    #[error(transparent)]
    Load(#[from] conveyor_plugin_api::host::LoadError),
    #[error(
        "{path}: its file name asks for plugin `{wanted}` but the library says it is `{actual}`"
    )]
    WrongName {
        path: PathBuf,
        wanted: String,
        actual: String,
    },
}

impl From<PluginError> for ConnectorError {
    fn from(e: PluginError) -> Self {
        // Nothing a retry can fix: the operator must change the file or the config.
        ConnectorError::new(ErrorKind::Config, e.to_string())
    }
}

/// A loaded library and the SHA-256 of the file it was loaded from.
struct Loaded {
    library: Arc<PluginLibrary>,
    sha256: String,
}

/// Libraries loaded by this process, by canonical path. A library stays
/// mapped for the life of the process, so loading it again would only
/// leak another handle; the checksum recorded here is that of the code
/// actually mapped, even if the file has since been replaced.
fn loaded() -> &'static Mutex<HashMap<PathBuf, Loaded>> {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, Loaded>>> = OnceLock::new();
    LOADED.get_or_init(Default::default)
}

/// The SHA-256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String, PluginError> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).map_err(|e| PluginError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Loads the library at `path` (once per process), refusing it before it is
/// mapped if `pinned` is given and the file's SHA-256 differs.
pub fn load(
    path: &Path,
    name_for_pin: &str,
    pinned: Option<&str>,
) -> Result<Arc<PluginLibrary>, PluginError> {
    let canonical = std::fs::canonicalize(path).map_err(|e| PluginError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut cache = loaded().lock().unwrap_or_else(|p| p.into_inner());
    let check = |actual: &str| match pinned {
        Some(pin) if pin != actual => Err(PluginError::Checksum {
            path: canonical.clone(),
            name: name_for_pin.to_string(),
            pinned: pin.to_string(),
            actual: actual.to_string(),
        }),
        _ => Ok(()),
    };
    if let Some(l) = cache.get(&canonical) {
        check(&l.sha256)?;
        return Ok(l.library.clone());
    }
    // Checked before loading: loading runs the library's initialisers.
    let sha256 = sha256_file(&canonical)?;
    check(&sha256)?;
    let library = Arc::new(PluginLibrary::load(&canonical)?);
    cache.insert(
        canonical,
        Loaded {
            library: library.clone(),
            sha256,
        },
    );
    Ok(library)
}

/// Finds, verifies and loads the plugin a source names, and checks that
/// the library is the plugin its file name promised.
pub fn load_for_source(cfg: &PluginSourceConfig) -> Result<Arc<PluginLibrary>, PluginError> {
    let path = find_library(&cfg.dirs, &cfg.plugin)?;
    let library = load(&path, &cfg.plugin, cfg.sha256.as_deref())?;
    if library.info.name != cfg.plugin {
        return Err(PluginError::WrongName {
            path,
            wanted: cfg.plugin.clone(),
            actual: library.info.name.clone(),
        });
    }
    Ok(library)
}

/// The source's options with its secrets resolved and added under their
/// names, and the secret values to scrub from what the plugin says.
pub fn options_with_secrets(cfg: &PluginSourceConfig) -> Result<(Json, Redact), ConnectorError> {
    let mut options = cfg.options.clone();
    let mut values = Vec::new();
    for (name, reference) in &cfg.secrets {
        // The message names the reference (`env:NAME`), never a value.
        let secret = reference.resolve().map_err(|e| {
            ConnectorError::new(
                ErrorKind::Config,
                format!("secret `{name}` of plugin `{}`: {e}", cfg.plugin),
            )
        })?;
        values.push(secret.expose().to_string());
        if let Json::Object(map) = &mut options {
            map.insert(name.clone(), Json::String(secret.expose().to_string()));
        }
    }
    Ok((options, Redact::new(values)))
}

/// The connector for a plugin source: loads the plugin and opens an
/// instance with the source's options, off the async threads (both run
/// plugin code, which may block).
pub async fn open_connector(
    cfg: &PluginSourceConfig,
) -> Result<Box<dyn Connector>, ConnectorError> {
    let cfg = cfg.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let library = load_for_source(&cfg)?;
        tracing::debug!(plugin = %library.info.name, version = %library.info.version, path = %library.path.display(), "plugin loaded");
        let (options, redact) = options_with_secrets(&cfg)?;
        PluginConnector::open_redacting(library, &options, redact)
    })
    .await
    .map_err(|e| ConnectorError::new(ErrorKind::Plugin, format!("opening the plugin failed: {e}")))?;
    Ok(Box::new(opened?))
}
