//! Kubernetes injection, run through the real binary: `kube patch` on AdmissionReview
//! fixtures (`tests/fixtures/kube/`), the patch applied with the json-patch crate and the
//! patched pod checked against Kubernetes' own schemas (`kubernetes-validate --strict`,
//! every release in `common::kube_validate::RELEASES`).
//!
//! - [`patch`]: `kube patch`: what is injected where, what survives, what is left alone,
//!   malformed reviews;
//! - [`runc`]: a patched pod's read-only mounts run by runc against the daemon;
//! - [`webhook`]: `kube webhook` over HTTPS (curl), the same answers, TLS trust, SIGHUP.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod patch;
mod runc;
mod webhook;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use serde_json::Value;

/// The fixture `name` of `tests/fixtures/kube/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kube")
        .join(name)
}

/// The bytes of fixture `name`.
pub fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("reading fixture {name}: {e}"))
}

/// Runs `lxcfs-rs kube patch ARGS` with `input` on stdin.
pub fn kube_patch(input: &[u8], args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lxcfs-rs"))
        .args(["kube", "patch"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting lxcfs-rs kube patch");
    // Written from a thread: a large input must not deadlock against a full stdout pipe.
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child
        .wait_with_output()
        .expect("waiting for lxcfs-rs kube patch");
    writer.join().unwrap();
    out
}

/// The `response` of the AdmissionReview `kube patch` printed for `input`, which must have
/// succeeded and printed one JSON line that is an `admission.k8s.io/v1` AdmissionReview.
pub fn patch_response(input: &[u8], args: &[&str]) -> Value {
    let out = kube_patch(input, args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kube patch failed: {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
    review_response(stdout.as_bytes())
}

/// The `response` of a response AdmissionReview, checking its envelope.
pub fn review_response(body: &[u8]) -> Value {
    let review: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1", "{review}");
    assert_eq!(review["kind"], "AdmissionReview", "{review}");
    review["response"].clone()
}

/// The operations of `response`'s patch: it must be `JSONPatch`, base64 of a JSON array.
pub fn patch_ops(response: &Value) -> json_patch::Patch {
    assert_eq!(response["patchType"], "JSONPatch", "{response}");
    let b64 = response["patch"].as_str().expect("patch is a string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("patch is base64");
    let ops: Value = serde_json::from_slice(&bytes).expect("patch is JSON");
    assert!(ops.is_array(), "patch is a JSON array: {ops}");
    serde_json::from_value(ops).expect("patch is RFC 6902")
}

/// The pod of review `input` with `response`'s patch applied.
pub fn patched_pod(input: &[u8], response: &Value) -> Value {
    let review: Value = serde_json::from_slice(input).unwrap();
    let mut pod = review["request"]["object"].clone();
    json_patch::patch(&mut pod, &patch_ops(response)).expect("the patch applies");
    pod
}
