//! `hearken demo`, the README's first command, run as a user runs it: the binary serves, streams
//! the bundled sample over gRPC, posts it to the HTTP gateway, and keeps serving until SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn demo_streams_the_sample_over_grpc_and_http_then_serves_until_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearken"))
        .args([
            "demo",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting hearken demo");
    // Kept open until the child exits: it prints a few more lines after the one awaited.
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let (mut interims, mut finals, mut http_json) = (0, Vec::new(), None);
    for line in lines.by_ref() {
        let line = line.expect("reading demo output");
        println!("{line}");
        if line.contains(" interim ") {
            interims += 1;
        } else if line.contains(" final ") {
            finals.push(line.clone());
        } else if line.trim_start().starts_with("{\"text\"") {
            http_json = Some(line.clone());
        } else if line.contains("keeps running") {
            break;
        }
    }
    // Still serving: SIGTERM is the way out, and it exits cleanly.
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "demo exited early");
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "demo exited with {status}");
    drop(lines);

    assert!(interims >= 2, "{interims} interim lines");
    let finals = finals.join(" ").to_lowercase();
    for word in ["hello", "test", "speech", "recognition", "computer"] {
        assert!(finals.contains(word), "final lines miss {word:?}: {finals}");
    }
    let json: serde_json::Value = serde_json::from_str(http_json.as_deref().unwrap().trim())
        .expect("the gateway answered JSON");
    let text = json["text"].as_str().unwrap().to_lowercase();
    assert!(text.contains("speech recognition"), "{text}");
}
