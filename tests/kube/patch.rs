//! `lxcfs-rs kube patch` on the fixtures of `tests/fixtures/kube/`.

use std::collections::BTreeMap;
use std::path::Path;

use lxcfs_rs::kube::targets::{self, Injected, VOLUME_PREFIX};
use serde_json::{Value, json};

use super::{fixture_bytes, kube_patch, patch_response, patched_pod};
use crate::common;

/// Every fixture whose pod is injected, with the `kube patch` flags that inject it.
const INJECTED: &[(&str, &[&str])] = &[
    ("pod-no-volumes.json", &[]),
    ("pod-with-volumes.json", &[]),
    ("pod-mounts-meminfo.json", &[]),
    ("pod-init-sidecar.json", &[]),
    ("pod-future-fields.json", &[]),
    ("pod-not-annotated.json", &["--namespace-opted-in"]),
];

fn all_targets() -> Vec<Injected> {
    targets::injected(Path::new("/var/lib/lxcfs"))
}

/// The containers and init containers of `pod`, by name.
fn containers(pod: &Value) -> BTreeMap<String, Value> {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|list| pod["spec"][list].as_array())
        .flatten()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c.clone()))
        .collect()
}

/// Checks that `pod` has exactly the volumes of `targets` among those named lxcfs-rs-*, each
/// a hostPath of type File or Directory, and that every container mounts each target path
/// exactly once: read-only from our volume, except the `(container, mountPath)` pairs of
/// `own`, which keep the container's own mount.
fn assert_injected(pod: &Value, targets: &[Injected], own: &[(&str, &str)]) {
    let ours: Vec<&Value> = pod["spec"]["volumes"]
        .as_array()
        .expect("spec.volumes")
        .iter()
        .filter(|v| v["name"].as_str().unwrap().starts_with(VOLUME_PREFIX))
        .collect();
    assert_eq!(ours.len(), targets.len(), "{ours:?}");
    for t in targets {
        let v: Vec<&&Value> = ours.iter().filter(|v| v["name"] == t.volume).collect();
        assert_eq!(v.len(), 1, "volume {} once", t.volume);
        assert_eq!(
            v[0]["hostPath"],
            json!({"path": t.host_path, "type": t.host_path_type}),
            "{}",
            t.volume
        );
        assert!(matches!(t.host_path_type, "File" | "Directory"));
        assert_eq!(v[0].as_object().unwrap().len(), 2, "only name and hostPath");
    }
    let all = containers(pod);
    assert!(!all.is_empty());
    for (name, c) in &all {
        let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
        for t in targets {
            let at: Vec<&Value> = mounts
                .iter()
                .filter(|m| m["mountPath"] == t.mount_path)
                .collect();
            assert_eq!(at.len(), 1, "{name}: {} mounted once", t.mount_path);
            if own.contains(&(name.as_str(), t.mount_path.as_str())) {
                assert_ne!(at[0]["name"], t.volume, "{name} keeps its own mount");
            } else {
                assert_eq!(
                    at[0],
                    &json!({"name": t.volume, "mountPath": t.mount_path, "readOnly": true}),
                    "{name}"
                );
            }
        }
    }
}

/// `response` allows `uid` with no patch and no error.
fn assert_untouched(response: &Value, uid: &Value) {
    assert_eq!(&response["uid"], uid);
    assert_eq!(response["allowed"], true);
    for field in ["patch", "patchType", "status"] {
        assert!(response.get(field).is_none(), "no {field}: {response}");
    }
}

fn uid_of(input: &[u8]) -> Value {
    serde_json::from_slice::<Value>(input).unwrap()["request"]["uid"].clone()
}

/// Runs the fixture, checks the response's envelope, and returns the patched pod, after
/// checking that the patched pod, reviewed again, gets no patch (idempotence).
fn inject(name: &str, args: &[&str]) -> Value {
    let input = fixture_bytes(name);
    let response = patch_response(&input, args);
    assert_eq!(response["uid"], uid_of(&input), "{name}: uid echoed");
    assert_eq!(response["allowed"], true);
    assert!(response.get("status").is_none(), "{response}");
    let pod = patched_pod(&input, &response);
    let mut again: Value = serde_json::from_slice(&input).unwrap();
    again["request"]["object"] = pod.clone();
    let again = serde_json::to_vec(&again).unwrap();
    assert_untouched(&patch_response(&again, args), &uid_of(&input));
    pod
}

#[test]
fn a_pod_without_volumes_gets_every_target() {
    let pod = inject("pod-no-volumes.json", &[]);
    assert_injected(&pod, &all_targets(), &[]);
}

#[test]
fn existing_volumes_and_mounts_are_kept_in_place() {
    let pod = inject("pod-with-volumes.json", &[]);
    assert_injected(&pod, &all_targets(), &[]);
    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    assert_eq!(volumes[0], json!({"name": "data", "emptyDir": {}}));
    assert_eq!(
        volumes[1],
        json!({"name": "conf", "configMap": {"name": "app-conf"}})
    );
    let mounts = pod["spec"]["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap();
    assert_eq!(mounts[0], json!({"name": "data", "mountPath": "/data"}));
    assert_eq!(mounts[1]["mountPath"], "/etc/app");
}

#[test]
fn a_container_mounting_meminfo_itself_keeps_that_mount_only() {
    let pod = inject("pod-mounts-meminfo.json", &[]);
    assert_injected(&pod, &all_targets(), &[("app", "/proc/meminfo")]);
    let app = &containers(&pod)["app"];
    assert!(
        app["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "own-meminfo"),
        "{app}"
    );
    assert_eq!(pod["spec"]["volumes"][0]["name"], "own-meminfo");
}

#[test]
fn init_containers_and_native_sidecars_are_injected_and_keep_their_restart_policy() {
    let pod = inject("pod-init-sidecar.json", &[]);
    assert_injected(&pod, &all_targets(), &[]);
    let all = containers(&pod);
    assert_eq!(all["sidecar"]["restartPolicy"], "Always");
    assert!(all["setup"].get("restartPolicy").is_none());
    assert_eq!(pod["metadata"]["generateName"], "init-sidecar-");
}

#[test]
fn unknown_fields_survive() {
    let pod = inject("pod-future-fields.json", &[]);
    assert_injected(&pod, &all_targets(), &[]);
    assert_eq!(
        pod["spec"]["futureField"],
        json!({"enabled": true, "level": 3})
    );
    assert_eq!(
        pod["spec"]["containers"][0]["futureContainerField"],
        "keep-me"
    );
}

#[test]
fn an_already_injected_pod_gets_no_patch() {
    let input = fixture_bytes("pod-already-injected.json");
    let review: Value = serde_json::from_slice(&input).unwrap();
    // The fixture really is injected, so an empty answer means "nothing to add".
    assert_injected(&review["request"]["object"], &all_targets(), &[]);
    for args in [&[][..], &["--namespace-opted-in"]] {
        assert_untouched(&patch_response(&input, args), &uid_of(&input));
    }
}

#[test]
fn opt_in_and_opt_out() {
    let opt_out = fixture_bytes("pod-opt-out.json");
    for args in [&[][..], &["--namespace-opted-in"]] {
        assert_untouched(&patch_response(&opt_out, args), &uid_of(&opt_out));
    }
    let plain = fixture_bytes("pod-not-annotated.json");
    assert_untouched(&patch_response(&plain, &[]), &uid_of(&plain));
    let pod = inject("pod-not-annotated.json", &["--namespace-opted-in"]);
    assert_injected(&pod, &all_targets(), &[]);
}

#[test]
fn a_foreign_volume_of_our_name_is_left_alone_with_a_warning() {
    let input = fixture_bytes("pod-volume-conflict.json");
    let response = patch_response(&input, &[]);
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none(), "{response}");
    let warnings = response["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("lxcfs-rs-proc-meminfo")),
        "{warnings:?}"
    );
}

#[test]
fn other_kinds_and_operations_are_allowed_unchanged() {
    let input = fixture_bytes("review-deployment.json");
    assert_untouched(&patch_response(&input, &[]), &uid_of(&input));
    let mut update: Value = serde_json::from_slice(&fixture_bytes("pod-no-volumes.json")).unwrap();
    update["request"]["operation"] = json!("UPDATE");
    let update = serde_json::to_vec(&update).unwrap();
    assert_untouched(&patch_response(&update, &[]), &uid_of(&update));
}

#[test]
fn the_mount_point_sets_the_host_paths() {
    let input = fixture_bytes("pod-no-volumes.json");
    let response = patch_response(&input, &["--mount-point", "/srv/lxcfs-rs"]);
    let pod = patched_pod(&input, &response);
    assert_injected(&pod, &targets::injected(Path::new("/srv/lxcfs-rs")), &[]);
    let out = kube_patch(&input, &["--mount-point", "srv/lxcfs"]);
    assert_one_line_failure(&out, "not an absolute path");
}

/// `out` is exit 1 with nothing on stdout and one line on stderr containing `what`.
#[track_caller]
fn assert_one_line_failure(out: &std::process::Output, what: &str) {
    common::assert_fails(out, 1, what);
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn reviews_without_a_uid_exit_1_with_one_line() {
    assert_one_line_failure(
        &kube_patch(&fixture_bytes("review-not-json.json"), &[]),
        "not JSON",
    );
    assert_one_line_failure(
        &kube_patch(&fixture_bytes("review-no-request.json"), &[]),
        "no request.uid",
    );
    assert_one_line_failure(&kube_patch(b"", &[]), "not JSON");
}

#[test]
fn a_request_whose_object_is_not_a_pod_is_allowed_with_a_message() {
    let input = fixture_bytes("review-object-not-a-pod.json");
    let out = kube_patch(&input, &[]);
    assert!(out.status.success(), "{out:?}");
    let response = super::review_response(&out.stdout);
    assert_eq!(response["uid"], uid_of(&input));
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none());
    let message = response["status"]["message"]
        .as_str()
        .expect("status.message");
    assert!(message.contains("not a JSON object"), "{message}");
    assert!(!response["warnings"].as_array().unwrap().is_empty());
    // A request that is no request at all: a uid and nothing else.
    let bare =
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1"}}"#;
    let response = patch_response(bare, &[]);
    assert_eq!(response["uid"], "u-1");
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed request")
    );
}

#[test]
fn patched_pods_pass_kubernetes_validate() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, args) in INJECTED {
        let mut pod = inject(name, args);
        if *name == "pod-future-fields.json" {
            // Fields no release knows fail --strict by design; what matters is the rest.
            pod["spec"].as_object_mut().unwrap().remove("futureField");
            pod["spec"]["containers"][0]
                .as_object_mut()
                .unwrap()
                .remove("futureContainerField");
        }
        if pod["metadata"].get("name").is_none() {
            // The validator needs a name; the apiserver makes one from generateName.
            let generated = format!("{}x7k2p", pod["metadata"]["generateName"].as_str().unwrap());
            pod["metadata"]["name"] = json!(generated);
        }
        let path = dir.path().join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(&pod).unwrap()).unwrap();
        files.push(path);
    }
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    if let Err(report) = common::kube_validate::validate(&paths, common::kube_validate::RELEASES) {
        panic!("kubernetes-validate: {report}");
    }
}

#[test]
fn the_validator_refuses_a_broken_patched_pod() {
    // The check above can fail: the same pod with a mount's readOnly not a boolean. (An
    // unknown hostPath type would pass: the schema has it as a free string.)
    let mut pod = inject("pod-no-volumes.json", &[]);
    pod["spec"]["containers"][0]["volumeMounts"][0]["readOnly"] = json!("yes");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.json");
    std::fs::write(&path, serde_json::to_vec(&pod).unwrap()).unwrap();
    assert!(
        common::kube_validate::validate(&[&path], &["1.37.0"]).is_err(),
        "a string readOnly passed"
    );
}
