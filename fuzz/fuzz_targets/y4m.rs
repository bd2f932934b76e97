#![no_main]

#[path = "../entry/y4m.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::y4m(data));
