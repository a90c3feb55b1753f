//! Fuzz target: the REST connector's paging and response handling against
//! canned responses over loopback HTTP (format: `conveyor_fuzz::rest_pager`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    conveyor_fuzz::rest_pager::fuzz_one(data);
});
