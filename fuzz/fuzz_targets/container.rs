#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hearken::fuzzing::container(data));
