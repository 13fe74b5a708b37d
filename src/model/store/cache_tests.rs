use super::*;
use crate::model::store::catalog::{CATALOG, CatalogEntry, PypiPackage};

const ENTRY: CatalogEntry = CatalogEntry {
    id: "fake",
    description: "",
    languages: "",
    multilingual: false,
    packages: &[PypiPackage {
        name: "p",
        version: "1",
        wheel_sha256: "ab",
        files: &[],
    }],
    assembled: &[],
};

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_dropped_staging_dir_leaves_nothing_behind() {
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::new(root.path().to_path_buf());
    let lock = cache.lock("fake").unwrap();
    let staging = cache.staging(&lock).unwrap();
    fs::write(staging.path().join("model.bin"), b"half").unwrap();
    drop(staging);
    assert_eq!(names(root.path()), [".locks"]);
    assert!(!cache.is_installed(&ENTRY));
}

#[test]
fn commit_installs_and_replaces_a_model_from_older_pins() {
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::new(root.path().to_path_buf());
    let dest = cache.model_dir("fake");
    fs::create_dir_all(&dest).unwrap();
    fs::write(dest.join("stale.bin"), b"old").unwrap();
    assert!(
        !cache.is_installed(&ENTRY),
        "a directory without marker is not a model"
    );

    let lock = cache.lock("fake").unwrap();
    let staging = cache.staging(&lock).unwrap();
    fs::write(staging.path().join("model.bin"), b"new").unwrap();
    staging.commit(&Marker::for_entry(&ENTRY), &dest).unwrap();

    assert!(cache.is_installed(&ENTRY));
    assert_eq!(names(&dest), [MARKER_FILE, "model.bin"]);
    assert_eq!(names(root.path()), [".locks", "fake"]);
    let other_pins = CatalogEntry {
        packages: CATALOG[0].packages,
        ..ENTRY
    };
    assert!(
        !cache.is_installed(&other_pins),
        "a changed pin must refetch"
    );
}

#[test]
fn staging_sweeps_what_a_killed_install_left() {
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::new(root.path().to_path_buf());
    let leftover = root.path().join(".fake.partial-99999");
    fs::create_dir_all(leftover.join("x")).unwrap();
    let lock = cache.lock("fake").unwrap();
    let staging = cache.staging(&lock).unwrap();
    assert!(!leftover.exists());
    assert!(staging.path().exists());
}

#[test]
fn the_install_lock_excludes_a_second_holder_until_dropped() {
    let root = tempfile::tempdir().unwrap();
    let cache = Cache::new(root.path().to_path_buf());
    let lock = cache.lock("fake").unwrap();
    let path = root.path().join(".locks/fake.lock");
    let other = File::open(&path).unwrap();
    assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
    drop(lock);
    other.try_lock().unwrap();
}

#[test]
fn ids_that_are_paths_are_refused() {
    let cache = Cache::new(tempfile::tempdir().unwrap().path().to_path_buf());
    for id in ["", "../x", "a/b", ".locks"] {
        assert!(
            matches!(cache.lock(id), Err(CacheError::BadId(_))),
            "{id:?}"
        );
    }
}

#[test]
fn dir_size_adds_nested_files() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir(root.path().join("d")).unwrap();
    fs::write(root.path().join("a"), [0u8; 10]).unwrap();
    fs::write(root.path().join("d/b"), [0u8; 5]).unwrap();
    assert_eq!(dir_size(root.path()), 15);
    assert_eq!(dir_size(&root.path().join("missing")), 0);
}
