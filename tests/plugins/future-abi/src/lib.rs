//! Test plugin that reports plugin ABI 99.3: the host must refuse it before
//! looking for anything else (it exports no `conveyor_plugin_init` at all).

/// ABI 99.3, packed as `(major << 16) | minor`.
#[no_mangle]
pub extern "C" fn conveyor_plugin_abi_version() -> u32 {
    (99 << 16) | 3
}
