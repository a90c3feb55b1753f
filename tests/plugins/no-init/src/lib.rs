//! Test plugin that reports this host's ABI (1.0) but exports no
//! `conveyor_plugin_init`: the host must name the missing symbol.

/// ABI 1.0, packed as `(major << 16) | minor`.
#[no_mangle]
pub extern "C" fn conveyor_plugin_abi_version() -> u32 {
    1 << 16
}
