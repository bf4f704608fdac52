//! Fuzz target: see `image_delete::fuzzing::object_list`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| image_delete::fuzzing::object_list(data));
