//! Owns the libFuzzer entry point for `rekey_fuzz::gateway_path`; the checks live in the library so
//! that the workspace's replay test (crates/rekey-server/tests/fuzz_replay.rs) runs the same code.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rekey_fuzz::gateway_path(data));
