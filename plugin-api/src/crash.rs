//! Deliberate crashes, for test plugins only (feature `test-crashes`):
//! the host's process isolation is tested against a plugin that really
//! dereferences null, not one that merely raises a signal.
//!
//! The `unsafe` lives here because plugin-api is the one crate allowed it;
//! nothing but `tests/plugins/` enables the feature.

/// Reads through a null pointer: the kernel answers with SIGSEGV.
pub fn dereference_null() -> ! {
    // Hidden from the optimiser, so the read is really emitted.
    let p: *const u8 = std::hint::black_box(std::ptr::null());
    // SAFETY: none — this is undefined behaviour on purpose. A volatile read
    // of address 0 faults on every platform Conveyor runs on, which is the
    // crash the tests need; only test plugins compile this.
    let v = unsafe { std::ptr::read_volatile(p) };
    unreachable!("reading address 0 returned {v}")
}
