//! Owns replaying the fuzz targets' inputs in the ordinary test run: every seed (`fuzz/seeds/`) and
//! every input that once made a target fail (`fuzz/regressions/`), plus a local `fuzz/corpus/` when
//! one exists, goes through the same checks the fuzzer runs (`fuzz/src/lib.rs`). CI gets the
//! fuzzers' findings without cargo-fuzz or a nightly compiler; `fuzz/run.sh` does the fuzzing.

#[path = "../../../fuzz/src/lib.rs"]
mod targets;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Replays every input saved for `name`; returns how many there were.
fn replay(name: &str) -> usize {
    let (_, target) = targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("the target is listed in TARGETS");
    let mut count = 0;
    for folder in ["seeds", "regressions", "corpus"] {
        let dir = fuzz_dir().join(folder).join(name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable fuzz input folder").path();
            let data = std::fs::read(&path).expect("a readable fuzz input");
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(
                outcome.is_ok(),
                "{name} fails on {} ({} bytes: {:?})",
                path.display(),
                data.len(),
                String::from_utf8_lossy(&data)
            );
            count += 1;
        }
    }
    count
}

#[test]
fn every_target_has_a_fuzzer_entry_point_and_seeds() {
    for (name, _) in targets::TARGETS {
        let entry = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        assert!(entry.is_file(), "{} is missing", entry.display());
        assert!(
            fuzz_dir().join("seeds").join(name).is_dir(),
            "{name} has no seeds"
        );
    }
}

#[test]
fn cosmos_authorization_inputs_replay_cleanly() {
    assert!(replay("cosmos_auth") > 0);
}

#[test]
fn key_format_inputs_replay_cleanly() {
    assert!(replay("key_format") > 0);
}

#[test]
fn resource_id_inputs_replay_cleanly() {
    assert!(replay("resource_id") > 0);
}

#[test]
fn arm_path_inputs_replay_cleanly() {
    assert!(replay("arm_path") > 0);
}

#[test]
fn wire_body_inputs_replay_cleanly() {
    assert!(replay("wire_bodies") > 0);
}

#[test]
fn gateway_path_inputs_replay_cleanly() {
    assert!(replay("gateway_path") > 0);
}
