//! `lxcfs-rs kube patch` as the apiserver would use its answer: the review in, the
//! response's envelope checked, its base64 JSON patch decoded and applied to the pod.

use std::process::Output;

use base64::Engine as _;
use serde_json::Value;

use super::run_bin_with_stdin;

/// Runs `lxcfs-rs kube patch ARGS` with `input` on stdin (it reads all of it before it
/// writes anything).
pub fn kube_patch(input: &[u8], args: &[&str]) -> Output {
    let mut argv = vec!["kube", "patch"];
    argv.extend_from_slice(args);
    run_bin_with_stdin(&argv, input)
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
