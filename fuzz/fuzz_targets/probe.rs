#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    diskforge_fuzz::probe(data);
    diskforge_fuzz::inspect_as(None, data);
});
