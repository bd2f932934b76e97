#![no_main]

#[path = "../entry/wav.rs"]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::wav(data));
