//! The host side of the plugin ABI: load a library, open instances, and
//! drive them as an async [`Connector`](crate::Connector).

mod connector;
mod instance;
mod library;
mod log;
mod native;
mod redact;

pub use connector::PluginConnector;
pub use instance::{PluginInstance, ReadEvent};
pub use library::{InitFn, LoadError, PluginLibrary, VersionFn};
pub use native::NativeConnector;
pub use redact::Redact;
