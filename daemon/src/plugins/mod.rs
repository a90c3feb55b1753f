//! Connector plugins in the daemon: finding a source's plugin library in the
//! configured folders, reading it once, checking its pinned SHA-256 and its
//! structure on those bytes, loading it once per process (libraries are
//! never unloaded), and opening instances — in this process, or in a child
//! process of their own (`isolated/`, `isolation = "process"`).
//!
//! Everything here fails with an error, never a panic: a plugin that cannot
//! be found, loaded or opened fails its own source's run, and every other
//! source keeps running.

mod discover;
pub mod isolated;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use conveyor_config::{PluginIsolation, PluginSourceConfig};
use conveyor_plugin_api::host::{LibraryImage, PluginConnector, PluginLibrary, Redact};
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
    let bytes = std::fs::read(path).map_err(|e| PluginError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(sha256_hex(&bytes))
}

/// The SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Refuses `actual` if a pin is given and differs.
fn check_pin(
    path: &Path,
    name: &str,
    pinned: Option<&str>,
    actual: &str,
) -> Result<(), PluginError> {
    match pinned {
        Some(pin) if pin != actual => Err(PluginError::Checksum {
            path: path.to_path_buf(),
            name: name.to_string(),
            pinned: pin.to_string(),
            actual: actual.to_string(),
        }),
        _ => Ok(()),
    }
}

fn canonical(path: &Path) -> Result<PathBuf, PluginError> {
    std::fs::canonicalize(path).map_err(|e| PluginError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Reads the file once and checks its pin and its structure on those bytes
/// (nothing is mapped, no plugin code runs). Returns the image and its
/// SHA-256.
pub fn verify(
    path: &Path,
    name_for_pin: &str,
    pinned: Option<&str>,
) -> Result<(LibraryImage, String), PluginError> {
    let image = LibraryImage::read(path)?;
    let sha256 = sha256_hex(image.bytes());
    check_pin(path, name_for_pin, pinned, &sha256)?;
    image.validate()?;
    Ok((image, sha256))
}

/// Loads the library at `path` (once per process), refusing it before it is
/// mapped if `pinned` is given and the file's SHA-256 differs, or if it is
/// not a complete shared object exporting the plugin symbols. What is
/// hashed, validated and mapped is one read of the file.
pub fn load(
    path: &Path,
    name_for_pin: &str,
    pinned: Option<&str>,
) -> Result<Arc<PluginLibrary>, PluginError> {
    Ok(load_hashed(path, name_for_pin, pinned)?.0)
}

/// [`load`], with the SHA-256 of the bytes that were mapped.
pub fn load_hashed(
    path: &Path,
    name_for_pin: &str,
    pinned: Option<&str>,
) -> Result<(Arc<PluginLibrary>, String), PluginError> {
    let canonical = canonical(path)?;
    let mut cache = loaded().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(l) = cache.get(&canonical) {
        check_pin(&canonical, name_for_pin, pinned, &l.sha256)?;
        return Ok((l.library.clone(), l.sha256.clone()));
    }
    // Checked before loading: loading runs the library's initialisers.
    let image = LibraryImage::read(&canonical)?;
    let sha256 = sha256_hex(image.bytes());
    check_pin(&canonical, name_for_pin, pinned, &sha256)?;
    let library = Arc::new(PluginLibrary::load_image(image)?);
    cache.insert(
        canonical,
        Loaded {
            library: library.clone(),
            sha256: sha256.clone(),
        },
    );
    Ok((library, sha256))
}

/// For `conveyor check`: finds the library each plugin source names and
/// runs the checks `load` runs before mapping it (pin, structure, ABI
/// symbols), without loading it. Returns `(problems, notes)`, each line
/// `sources.NAME.type: …`: a library that is there but unusable is a
/// problem; one not installed yet is a note (a config may well be deployed
/// before its plugins; each run of the source fails until it is there).
pub fn check_sources(config: &conveyor_config::Config) -> (Vec<String>, Vec<String>) {
    let (mut problems, mut notes) = (Vec::new(), Vec::new());
    for source in &config.sources {
        let conveyor_config::ConnectorConfig::Plugin(p) = &source.connector else {
            continue;
        };
        match find_library(&p.dirs, &p.plugin) {
            Err(e) => notes.push(format!("sources.{}.type: not checked: {e}", source.name)),
            Ok(path) => {
                if let Err(e) = verify(&path, &p.plugin, p.sha256.as_deref()) {
                    problems.push(format!("sources.{}.type: {e}", source.name));
                }
            }
        }
    }
    (problems, notes)
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
    let (options, values) = resolve_secrets(cfg)?;
    Ok((options, Redact::new(values)))
}

/// The source's options with its secrets resolved and added, and the
/// secret values themselves (for a plugin host process to scrub).
pub fn resolve_secrets(cfg: &PluginSourceConfig) -> Result<(Json, Vec<String>), ConnectorError> {
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
    Ok((options, values))
}

/// The connector for a plugin source: loads the plugin and opens an
/// instance with the source's options, off the async threads (both run
/// plugin code, which may block) — or, with `isolation = "process"`, in a
/// plugin host process of its own.
pub async fn open_connector(
    cfg: &PluginSourceConfig,
) -> Result<Box<dyn Connector>, ConnectorError> {
    if cfg.isolation == PluginIsolation::Process {
        return Ok(Box::new(isolated::IsolatedConnector::open(cfg).await?));
    }
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
