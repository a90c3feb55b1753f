//! Loading a plugin library: the file read once and checked before it is
//! mapped (`validate.rs`), dlopen, the ABI version check, `init`, `info`.
//! A loaded library is never unloaded (its code may still be on a stack, and
//! Rust plugins register thread-local destructors that outlive any call).
//!
//! On Linux the library is mapped from a sealed in-memory copy (memfd) of
//! the bytes that were validated (and that the daemon hashed against its
//! pin), not from the path: a file replaced or truncated between the check
//! and dlopen — or later, by a `cp` over a library the daemon has mapped,
//! which would SIGBUS it on the next page-in — cannot reach the process.

use std::path::{Path, PathBuf};

use crate::ffi::{
    unpack_version, FfiBytes, FfiError, PluginFunctions, ABI_MAJOR, ABI_MINOR, ABI_VERSION_SYMBOL,
    INIT_SYMBOL, STATUS_OK,
};
use crate::PluginInfo;

/// Why a library could not be used as a plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
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

/// The bytes of a plugin file, read once: what is hashed, validated and
/// mapped is this one copy, whatever happens to the file meanwhile.
pub struct LibraryImage {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl LibraryImage {
    /// Reads the whole file at `path`.
    pub fn read(path: &Path) -> Result<LibraryImage, LoadError> {
        let bytes = std::fs::read(path).map_err(|e| LoadError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(LibraryImage {
            path: path.to_path_buf(),
            bytes,
        })
    }

    /// An image of `bytes` said to come from `path` (tests, or bytes read elsewhere).
    pub fn from_bytes(path: PathBuf, bytes: Vec<u8>) -> LibraryImage {
        LibraryImage { path, bytes }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Checks that the bytes are a complete shared object of this platform
    /// exporting the plugin symbols, without mapping or running any of it
    /// (what `conveyor check` does for every plugin a source names).
    pub fn validate(&self) -> Result<(), LoadError> {
        let exports = self.validate_structure()?;
        if !exports.init {
            return Err(LoadError::MissingSymbol {
                path: self.path.clone(),
                symbol: INIT_SYMBOL,
            });
        }
        Ok(())
    }

    /// The structural checks and the version symbol; `init` is reported
    /// separately, after the version (another ABI major may lack it).
    fn validate_structure(&self) -> Result<super::validate::Exports, LoadError> {
        use super::validate::Invalid;
        super::validate::validate(&self.bytes).map_err(|e| match e {
            Invalid::NotLoadable(reason) => LoadError::NotALibrary {
                path: self.path.clone(),
                reason,
            },
            Invalid::MissingSymbol(symbol) => LoadError::MissingSymbol {
                path: self.path.clone(),
                symbol,
            },
        })
    }
}

/// Maps the image: from a sealed memfd holding exactly its bytes on Linux,
/// from its path elsewhere.
fn open_image(image: &LibraryImage) -> Result<libloading::Library, LoadError> {
    let not_a_library = |reason: String| LoadError::NotALibrary {
        path: image.path.clone(),
        reason,
    };
    #[cfg(target_os = "linux")]
    {
        match sealed_copy(image) {
            Ok(fd) => {
                use std::os::fd::AsRawFd;
                let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
                // SAFETY: loading a library runs its initialisers. Plugins are
                // code the operator chose to trust (and may pin by sha256);
                // the bytes were validated as a complete shared object, and
                // Rust cdylibs built with this SDK have no initialisers with
                // preconditions.
                let library = unsafe { libloading::Library::new(&proc_path) }.map_err(|e| {
                    not_a_library(
                        e.to_string()
                            .replace(&proc_path, &image.path.display().to_string()),
                    )
                })?;
                // Kept open for the life of the process: the dynamic loader
                // knows this library by its `/proc/self/fd/N` name, and a
                // reused descriptor number would make a later dlopen of
                // another plugin return this one.
                std::mem::forget(fd);
                return Ok(library);
            }
            Err(e) => tracing::debug!(path = %image.path.display(), error = %e,
                "no sealed in-memory copy of the plugin; mapping the file itself"),
        }
    }
    // SAFETY: as above; here the file is mapped by its path (the bytes were
    // validated, but the file could change before it is mapped).
    unsafe { libloading::Library::new(&image.path) }.map_err(|e| not_a_library(e.to_string()))
}

/// A memfd holding the image's bytes, sealed against any change.
#[cfg(target_os = "linux")]
fn sealed_copy(image: &LibraryImage) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{MemfdFlags, SealFlags};
    use std::io::Write;
    let name = image
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(&image.bytes)?;
    rustix::fs::fcntl_add_seals(
        &file,
        SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
    )?;
    Ok(file.into())
}

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
        Self::load_image(LibraryImage::read(path)?)
    }

    /// Validates `image` and loads exactly its bytes (see the module docs).
    pub fn load_image(image: LibraryImage) -> Result<PluginLibrary, LoadError> {
        let exports = image.validate_structure()?;
        let path = image.path.clone();
        let library = open_image(&image)?;
        drop(image);
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
        if !exports.init {
            return Err(LoadError::MissingSymbol {
                path,
                symbol: INIT_SYMBOL,
            });
        }
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
