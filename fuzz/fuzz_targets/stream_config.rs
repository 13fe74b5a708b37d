#![no_main]

libfuzzer_sys::fuzz_target!(
    init: hearken::fuzzing::unwind_to_guards(),
    |data: &[u8]| hearken::fuzzing::stream_config(data)
);
