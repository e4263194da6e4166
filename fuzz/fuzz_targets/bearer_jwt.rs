//! Fuzz target `bearer_jwt`: see `harness::bearer_jwt`.
#![no_main]

#[path = "../harness.rs"]
#[allow(dead_code)]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::bearer_jwt(data));
