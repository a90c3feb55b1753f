//! Fuzz target: a page's bytes (first line: the records selector) → Arrow
//! columns, on the hot path and the `Value` path, which must agree.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = conveyor_fuzz::page_columns::fuzz_one(data);
});
