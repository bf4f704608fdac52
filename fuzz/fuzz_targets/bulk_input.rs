//! Fuzz target: see `image_delete::fuzzing::bulk_input`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| image_delete::fuzzing::bulk_input(data));
