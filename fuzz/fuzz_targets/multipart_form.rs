#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hearken::fuzzing::multipart_form(data));
