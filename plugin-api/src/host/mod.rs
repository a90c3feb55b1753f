//! The host side of the plugin ABI: load a library, open instances, and
//! drive them as an async [`Connector`](crate::Connector).

mod connector;
mod instance;
mod library;
mod log;
mod native;
mod redact;
mod validate;

pub use connector::PluginConnector;
pub use instance::{PluginInstance, ReadEvent};
pub use library::{InitFn, LibraryImage, LoadError, PluginLibrary, VersionFn};
pub use log::LogForward;
pub use native::NativeConnector;
pub use redact::Redact;
