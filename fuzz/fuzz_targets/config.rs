//! Fuzz target: arbitrary bytes as a config file → parse and validate
//! offline. Errors are fine; a panic or an unlocated error is a crash.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    conveyor_config::fuzzing::fuzz_one(data);
});
