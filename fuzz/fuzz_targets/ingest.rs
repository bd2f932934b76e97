#![no_main]

#[path = "../entry/fleet.rs"]
#[allow(dead_code)]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::ingest(data));
