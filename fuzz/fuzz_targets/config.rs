#![no_main]

#[path = "../entry/daemon.rs"]
#[allow(dead_code)]
mod entry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry::config(data));
