#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| diskforge_fuzz::map_as(
    diskforge::format::Format::Vmdk,
    data
));
