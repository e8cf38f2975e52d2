#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| diskforge_fuzz::inspect_as(
    Some(diskforge::format::Format::Qcow),
    data
));
