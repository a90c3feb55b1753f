//! The plugin side of the ABI: what a plugin author implements, and the
//! `export_connector!` macro that turns it into the exported C symbols.
//!
//! An author writes a [`BlockingConnector`](crate::BlockingConnector), adds
//! [`Plugin`] (its name and how to open it from JSON options) and calls
//! `conveyor_plugin_api::export_connector!(MyConnector);` once. The author's
//! code needs no `unsafe`. The crate must be a `cdylib` built with
//! `panic = "unwind"` (the default): every exported function catches panics,
//! turns them into errors and poisons the instance; with `panic = "abort"` a
//! panic would take the whole daemon down instead.

mod exports;
mod host;
mod owned;

pub use exports::init;
pub use host::Host;

use crate::{BlockingConnector, ConnectorError, Json, PluginInfo};

/// A connector packaged as a plugin.
pub trait Plugin: BlockingConnector + Sized + 'static {
    /// Name (the `type` sources use), version and description.
    fn info() -> PluginInfo;

    /// Builds an instance from the source's `options` table (as JSON).
    /// Keep it quick: validate and prepare, do I/O in `read`. `host` logs
    /// into the daemon's log and stays valid as long as the instance lives.
    fn open(options: Json, host: Host) -> Result<Self, ConnectorError>;
}

/// The packed ABI version this SDK implements, for the exported symbol.
pub fn abi_version() -> u32 {
    crate::ffi::pack_version(crate::ffi::ABI_MAJOR, crate::ffi::ABI_MINOR)
}

/// Exports `$ty` (a [`Plugin`]) as this library's connector: defines the
/// `conveyor_plugin_abi_version` and `conveyor_plugin_init` symbols.
#[macro_export]
macro_rules! export_connector {
    ($ty:ty) => {
        /// The Conveyor plugin ABI version this library speaks.
        #[no_mangle]
        pub extern "C" fn conveyor_plugin_abi_version() -> u32 {
            $crate::plugin::abi_version()
        }

        /// Fills Conveyor's function table for this plugin.
        ///
        /// # Safety
        /// Called by the host with a valid, size-prefixed table and error slot.
        #[no_mangle]
        pub unsafe extern "C" fn conveyor_plugin_init(
            table: *mut $crate::ffi::PluginFunctions,
            error: *mut $crate::ffi::FfiError,
        ) -> i32 {
            // SAFETY: the host passes pointers that satisfy `init`'s contract.
            unsafe { $crate::plugin::init::<$ty>(table, error) }
        }
    };
}
