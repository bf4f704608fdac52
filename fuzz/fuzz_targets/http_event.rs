//! Fuzz target: see `image_delete::fuzzing::http_event`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| image_delete::fuzzing::http_event(data));
