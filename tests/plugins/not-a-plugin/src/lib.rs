//! Test library: a real shared library exporting something other than the
//! plugin symbols, as a stray `.so` in a plugin folder would.

#[no_mangle]
pub extern "C" fn add_one(x: u32) -> u32 {
    x.wrapping_add(1)
}
