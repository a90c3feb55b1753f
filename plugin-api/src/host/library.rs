//! Loading a plugin library: dlopen, the ABI version check, `init`, `info`.
//! A loaded library is never unloaded (its code may still be on a stack, and
//! Rust plugins register thread-local destructors that outlive any call).

use std::path::{Path, PathBuf};

use crate::ffi::{
    unpack_version, FfiBytes, FfiError, PluginFunctions, ABI_MAJOR, ABI_MINOR, ABI_VERSION_SYMBOL,
    INIT_SYMBOL, STATUS_OK,
};
use crate::PluginInfo;

/// Why a library could not be used as a plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: not a loadable shared library: {reason}")]
    NotALibrary { path: PathBuf, reason: String },
    #[error("{path}: not a Conveyor plugin: it does not export `{symbol}` (build it with conveyor_plugin_api::export_connector!, see PLUGINS.md)")]
    MissingSymbol { path: PathBuf, symbol: &'static str },
    #[error(
        "{path}: plugin ABI {plugin_major}.{plugin_minor} is not supported: this conveyor speaks plugin ABI {host_major}.{host_minor} \
         (rebuild the plugin against conveyor-plugin-api with ABI {host_major}.x, or run a conveyor whose plugin ABI major is {plugin_major})"
    )]
    AbiMismatch {
        path: PathBuf,
        plugin_major: u16,
        plugin_minor: u16,
        host_major: u16,
        host_minor: u16,
    },
    #[error("{path}: plugin init failed: {message}")]
    Init { path: PathBuf, message: String },
    #[error("{path}: plugin's function table lacks `{function}`")]
    Incomplete {
        path: PathBuf,
        function: &'static str,
    },
    #[error("{path}: plugin info is invalid: {message}")]
    BadInfo { path: PathBuf, message: String },
}

/// Every library this process loaded; they stay loaded until it exits.
static LOADED: std::sync::Mutex<Vec<&'static libloading::Library>> =
    std::sync::Mutex::new(Vec::new());

/// A loaded plugin library: its resolved function table and identity.
pub struct PluginLibrary {
    pub path: PathBuf,
    pub info: PluginInfo,
    /// The ABI version the plugin reported, `(major, minor)`.
    pub abi: (u16, u16),
    pub(crate) functions: PluginFunctions,
}

impl std::fmt::Debug for PluginLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginLibrary")
            .field("path", &self.path)
            .field("info", &self.info)
            .field("abi", &self.abi)
            .finish()
    }
}

/// `conveyor_plugin_abi_version`.
pub type VersionFn = unsafe extern "C" fn() -> u32;
/// `conveyor_plugin_init`.
pub type InitFn = unsafe extern "C" fn(*mut PluginFunctions, *mut FfiError) -> i32;

/// Takes ownership of a plugin error: copies its text, then releases it.
///
/// # Safety
/// `e` must have been filled by the plugin (or still be `FfiError::empty()`).
pub(crate) unsafe fn take_error(e: &mut FfiError) -> (crate::ErrorKind, String) {
    let message = if e.message.is_null() {
        "the plugin reported an error without a message".to_string()
    } else {
        // SAFETY: the plugin guarantees `message_len` readable bytes until release.
        String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(e.message, e.message_len) })
            .into_owned()
    };
    let kind = crate::ffi::kind_from_code(e.kind);
    if let Some(release) = e.release {
        // SAFETY: released exactly once, with the plugin's own callback.
        unsafe { release(e) };
    }
    (kind, message)
}

/// Copies plugin-owned bytes, then releases them.
///
/// # Safety
/// `b` must have been filled by the plugin (or still be `FfiBytes::empty()`).
pub(crate) unsafe fn take_bytes(b: &mut FfiBytes) -> Vec<u8> {
    let out = if b.data.is_null() {
        Vec::new()
    } else {
        // SAFETY: the plugin guarantees `len` readable bytes until release.
        unsafe { std::slice::from_raw_parts(b.data, b.len) }.to_vec()
    };
    if let Some(release) = b.release {
        // SAFETY: released exactly once, with the plugin's own callback.
        unsafe { release(b) };
    }
    out
}

/// Refuses any ABI major version but ours; returns `(major, minor)`.
fn check_version(path: &Path, packed: u32) -> Result<(u16, u16), LoadError> {
    let (plugin_major, plugin_minor) = unpack_version(packed);
    if plugin_major != ABI_MAJOR {
        return Err(LoadError::AbiMismatch {
            path: path.to_path_buf(),
            plugin_major,
            plugin_minor,
            host_major: ABI_MAJOR,
            host_minor: ABI_MINOR,
        });
    }
    Ok((plugin_major, plugin_minor))
}

impl PluginLibrary {
    /// Loads the library at `path` and checks that it is a plugin this host
    /// can drive. The library stays mapped for the life of the process.
    pub fn load(path: &Path) -> Result<PluginLibrary, LoadError> {
        let path = path.to_path_buf();
        // SAFETY: loading a library runs its initialisers. Plugins are code
        // the operator chose to trust (and may pin by sha256); Rust cdylibs
        // built with this SDK have no initialisers with preconditions.
        let library =
            unsafe { libloading::Library::new(&path) }.map_err(|e| LoadError::NotALibrary {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        // Never unloaded: code and thread-local destructors of the plugin
        // must stay mapped as long as the process lives.
        let library: &'static libloading::Library = Box::leak(Box::new(library));
        // Remembered, so leak checkers see the handles as held, not lost.
        LOADED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(library);

        // SAFETY: the symbol's type is fixed by the ABI (`ffi::ABI_VERSION_SYMBOL`).
        let version: VersionFn = *unsafe {
            library.get::<VersionFn>(ABI_VERSION_SYMBOL.as_bytes())
        }
        .map_err(|_| LoadError::MissingSymbol {
            path: path.clone(),
            symbol: ABI_VERSION_SYMBOL,
        })?;
        // The version is checked before `init` is even looked up: a library
        // from another major version may lay out everything differently.
        // SAFETY: takes no arguments and only returns a number.
        check_version(&path, unsafe { version() })?;
        // SAFETY: the symbol's type is fixed by the ABI (`ffi::INIT_SYMBOL`).
        let init: InitFn =
            *unsafe { library.get::<InitFn>(INIT_SYMBOL.as_bytes()) }.map_err(|_| {
                LoadError::MissingSymbol {
                    path: path.clone(),
                    symbol: INIT_SYMBOL,
                }
            })?;
        // SAFETY: both functions come from the library, which stays loaded.
        unsafe { Self::from_entry_points(path, version, init) }
    }

    /// Builds a library from its two entry points, e.g. a plugin linked into
    /// the host statically (tests do this to drive the ABI without dlopen).
    ///
    /// # Safety
    /// `version` and `init` must follow the ABI contract in [`crate::ffi`],
    /// and every function `init` hands out must stay callable for the life
    /// of the process.
    pub unsafe fn from_entry_points(
        path: PathBuf,
        version: VersionFn,
        init: InitFn,
    ) -> Result<PluginLibrary, LoadError> {
        // SAFETY: per the caller, `version` is a valid ABI version function.
        let (plugin_major, plugin_minor) = check_version(&path, unsafe { version() })?;
        let mut functions = PluginFunctions::empty();
        let mut error = FfiError::empty();
        // SAFETY: `functions` is a zeroed, size-prefixed table and `error`
        // an empty slot, both valid for the call.
        let status = unsafe { init(&mut functions, &mut error) };
        if status != STATUS_OK {
            // SAFETY: the plugin filled `error` on failure.
            let (_, message) = unsafe { take_error(&mut error) };
            return Err(LoadError::Init { path, message });
        }
        // Only the fields the plugin says it filled count.
        let filled = functions.size.min(std::mem::size_of::<PluginFunctions>());
        let present = |offset: usize| filled >= offset + std::mem::size_of::<usize>();
        macro_rules! require {
            ($field:ident) => {
                if !present(std::mem::offset_of!(PluginFunctions, $field))
                    || functions.$field.is_none()
                {
                    return Err(LoadError::Incomplete {
                        path,
                        function: stringify!($field),
                    });
                }
            };
        }
        require!(info);
        require!(open);
        require!(streams);
        require!(read);
        require!(close);

        let info_fn = functions.info.expect("checked above");
        let mut out = FfiBytes::empty();
        let mut error = FfiError::empty();
        // SAFETY: both out-slots are empty and valid for the call.
        let status = unsafe { info_fn(&mut out, &mut error) };
        if status != STATUS_OK {
            // SAFETY: the plugin filled `error` on failure.
            let (_, message) = unsafe { take_error(&mut error) };
            return Err(LoadError::BadInfo { path, message });
        }
        // SAFETY: the plugin filled `out` on success.
        let json = unsafe { take_bytes(&mut out) };
        let info: PluginInfo = serde_json::from_slice(&json).map_err(|e| LoadError::BadInfo {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(PluginLibrary {
            path,
            info,
            abi: (plugin_major, plugin_minor),
            functions,
        })
    }
}
