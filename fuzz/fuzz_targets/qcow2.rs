#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| diskforge_fuzz::qcow2_bytes(data));
