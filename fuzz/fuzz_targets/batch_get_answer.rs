//! Fuzz target: see `image_delete::fuzzing::batch_get_answer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| image_delete::fuzzing::batch_get_answer(data));
