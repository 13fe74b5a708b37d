//! Replays the fuzz targets' seeds and every committed finding (`fuzz/regressions/TARGET/`)
//! through the same entry points `cargo fuzz` drives, so a fixed crash stays fixed without a
//! nightly toolchain. Each input must be handled without a panic.

use std::path::Path;

#[test]
fn every_seed_and_regression_input_is_handled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for (target, run) in hearken::fuzzing::TARGETS {
        for kind in ["seeds", "regressions"] {
            let dir = root.join(kind).join(target);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| run(&data));
                assert!(outcome.is_ok(), "{target}: {} panicked", path.display());
                replayed += 1;
            }
        }
    }
    assert!(
        replayed >= 10,
        "only {replayed} inputs found under {}",
        root.display()
    );
}
