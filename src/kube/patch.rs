//! The pure core of injection: an AdmissionReview in, the AdmissionReview response out.
//! `kube patch` runs it on stdin, the webhook on each request body.
//!
//! The patch is built on the pod's raw JSON, never on a typed Pod decoded and encoded again:
//! a typed round trip drops every field the types do not know (cndoit18/lxcfs-on-kubernetes
//! lost native sidecars' `restartPolicy` that way), while RFC 6902 `add` operations leave
//! everything they do not name as the client sent it.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::review::{self, Request, Response, ReviewError};
use super::targets::{self, INJECT_ANNOTATION, Injected};

/// What decides injection besides the pod.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where lxcfs-rs is mounted on the nodes (an absolute path).
    pub mount_point: PathBuf,
    /// The pod's namespace carries [`targets::NAMESPACE_LABEL`]: inject unless the pod opts
    /// out. The webhook configuration's `namespaceSelector` decides this, so the webhook
    /// needs no API access to read namespaces; the same server serves it on another path.
    pub namespace_opted_in: bool,
}

/// The answer to one review, with what to log about it.
#[derive(Debug)]
pub struct Reviewed {
    /// The response to send back.
    pub response: Response,
    /// `namespace/name` of the pod (`-` when unknown).
    pub pod: String,
    /// Volume mounts added, over all containers.
    pub injected: usize,
    /// Why nothing (or what) was injected, for the log.
    pub note: String,
}

impl Reviewed {
    /// The one log line for this review.
    pub fn log_line(&self) -> String {
        format!(
            "review uid={} pod={} injected={} ({})",
            self.response.uid, self.pod, self.injected, self.note
        )
    }

    fn allow(request: &Request, note: impl Into<String>) -> Self {
        Reviewed {
            response: Response::allow(&request.uid),
            pod: request.display_name(),
            injected: 0,
            note: note.into(),
        }
    }

    fn failed(uid: &str, pod: String, message: String) -> Self {
        Reviewed {
            response: Response::failed(uid, &message),
            pod,
            injected: 0,
            note: format!("error: {message}"),
        }
    }
}

/// Answers the AdmissionReview `body`. Always an allowing response when the request's uid
/// can be read; `Err` (for HTTP 400 or exit 1) only when it cannot.
pub fn review(body: &[u8], options: &Options) -> Result<Reviewed, ReviewError> {
    let received = review::parse(body)?;
    let request = match received.request {
        Ok(request) => request,
        Err(message) => return Ok(Reviewed::failed(&received.uid, "-".into(), message)),
    };
    if !request.is_pod_create() {
        return Ok(Reviewed::allow(&request, "not a pod creation"));
    }
    let pod_name = request.display_name();
    let pod = match request.object.as_ref() {
        Some(pod) if pod.is_object() => pod,
        Some(_) => {
            let message = "request.object is not a JSON object".to_string();
            return Ok(Reviewed::failed(&request.uid, pod_name, message));
        }
        None => {
            let message = "request has no object".to_string();
            return Ok(Reviewed::failed(&request.uid, pod_name, message));
        }
    };
    if let Some(kind) = pod.get("kind").and_then(Value::as_str)
        && kind != "Pod"
    {
        let message = format!("request.object is a {kind}, not a Pod");
        return Ok(Reviewed::failed(&request.uid, pod_name, message));
    }
    let (opted_in, mut warnings) = opted_in(pod, options.namespace_opted_in);
    if !opted_in {
        let mut reviewed = Reviewed::allow(&request, "not opted in");
        reviewed.response.warnings = warnings;
        return Ok(reviewed);
    }
    if pod.pointer("/spec/os/name").and_then(Value::as_str) == Some("windows") {
        return Ok(Reviewed::allow(&request, "a Windows pod"));
    }
    let targets = targets::injected(&options.mount_point);
    let mut reviewed = match pod_patch(pod, &targets) {
        Err(message) => Reviewed::failed(&request.uid, pod_name, message),
        Ok(PodPatch::Conflict(message)) => {
            warnings.push(review::truncate(&format!(
                "lxcfs-rs: not injected: {message}"
            )));
            Reviewed {
                note: format!("conflict: {message}"),
                ..Reviewed::allow(&request, "")
            }
        }
        Ok(PodPatch::Ops { ops, mounts }) => Reviewed {
            response: Response::allow(&request.uid).with_patch(&ops),
            pod: pod_name,
            injected: mounts,
            note: if ops.is_empty() {
                "already injected".to_string()
            } else {
                "injected".to_string()
            },
        },
    };
    reviewed.response.warnings.splice(0..0, warnings);
    Ok(reviewed)
}

/// Whether `pod` is to be injected: its [`INJECT_ANNOTATION`] is `"true"`, or the namespace
/// opted in and the annotation is not `"false"`. Any other annotation value counts as
/// absent, with a warning, so a typo (`"yes"`) is seen rather than silently ignored.
pub fn opted_in(pod: &Value, namespace_opted_in: bool) -> (bool, Vec<String>) {
    let annotation = pod
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(INJECT_ANNOTATION));
    match annotation.and_then(Value::as_str) {
        Some("true") => (true, Vec::new()),
        Some("false") => (false, Vec::new()),
        None if annotation.is_none() => (namespace_opted_in, Vec::new()),
        _ => (
            namespace_opted_in,
            vec![review::truncate(&format!(
                "lxcfs-rs: annotation {INJECT_ANNOTATION}={} is neither \"true\" nor \"false\"; ignored",
                annotation.map(Value::to_string).unwrap_or_default()
            ))],
        ),
    }
}

/// The patch for one pod.
#[derive(Debug, PartialEq)]
pub enum PodPatch {
    /// RFC 6902 operations (none when the pod already has everything) and how many volume
    /// mounts they add.
    Ops {
        /// The operations, in order.
        ops: Vec<Value>,
        /// Volume mounts added over all containers.
        mounts: usize,
    },
    /// The pod has a volume of one of our names that is not ours: injecting would either
    /// replace the pod's own volume or mount it where our file belongs.
    Conflict(String),
}

/// Container lists that get the mounts: init containers too (a native sidecar, an init
/// container with `restartPolicy: Always`, runs beside the app and reads the same files).
/// Ephemeral containers cannot be set at creation.
const CONTAINER_LISTS: &[&str] = &["initContainers", "containers"];

/// Builds the operations that give every container of `pod` the mounts of `targets` it does
/// not have yet, and the pod the volumes they use. `Err` says why the pod's JSON cannot be
/// patched (a field of the wrong type).
pub fn pod_patch(pod: &Value, targets: &[Injected]) -> Result<PodPatch, String> {
    let spec = match pod.get("spec") {
        Some(Value::Object(spec)) => spec,
        Some(_) => return Err("spec is not an object".to_string()),
        None => return Err("the pod has no spec".to_string()),
    };
    let volumes = match spec.get("volumes") {
        None | Some(Value::Null) => None,
        Some(Value::Array(v)) => Some(v),
        Some(_) => return Err("spec.volumes is not an array".to_string()),
    };
    let existing = |name: &str| {
        volumes
            .into_iter()
            .flatten()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(name))
    };
    // Every volume of one of our names, not only the first: a pod listing a name twice is
    // invalid, and injecting must not be what hides the second one.
    for volume in volumes.into_iter().flatten() {
        let name = volume.get("name").and_then(Value::as_str);
        let Some(target) = targets.iter().find(|t| Some(t.volume.as_str()) == name) else {
            continue;
        };
        let path = volume.pointer("/hostPath/path").and_then(Value::as_str);
        if path != Some(target.host_path.as_str()) {
            return Ok(PodPatch::Conflict(format!(
                "the pod already has a volume named {} that is not hostPath {}",
                target.volume, target.host_path
            )));
        }
    }

    let mut ops = Vec::new();
    let mut mounts = 0;
    // Volume names some container mounts once the patch is applied.
    let mut used: Vec<&str> = Vec::new();
    for list in CONTAINER_LISTS {
        let containers = match spec.get(*list) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(c)) => c,
            Some(_) => return Err(format!("spec.{list} is not an array")),
        };
        for (index, container) in containers.iter().enumerate() {
            let Value::Object(container) = container else {
                return Err(format!("spec.{list}[{index}] is not an object"));
            };
            let current = match container.get("volumeMounts") {
                None | Some(Value::Null) => None,
                Some(Value::Array(m)) => Some(m),
                Some(_) => {
                    return Err(format!("spec.{list}[{index}].volumeMounts is not an array"));
                }
            };
            for mount in current.into_iter().flatten() {
                if let Some(name) = mount.get("name").and_then(Value::as_str) {
                    used.push(name);
                }
            }
            let mounted = |path: &str| {
                current.into_iter().flatten().any(|m| {
                    m.get("mountPath")
                        .and_then(Value::as_str)
                        .is_some_and(|p| same_path(p, path))
                })
            };
            let new: Vec<Value> = targets
                .iter()
                .filter(|t| !mounted(&t.mount_path))
                .map(|t| {
                    used.push(&t.volume);
                    // Read-only: the files are read-only anyway, and a read-only bind keeps
                    // a process in the container from remounting it writable.
                    json!({"name": t.volume, "mountPath": t.mount_path, "readOnly": true})
                })
                .collect();
            if new.is_empty() {
                continue;
            }
            mounts += new.len();
            let base = pointer(&["spec", list, &index.to_string(), "volumeMounts"]);
            append(&mut ops, &base, current.is_none(), new);
        }
    }

    // Only volumes some container uses: a hostPath volume of type File is checked by the
    // kubelet even when nothing mounts it, and would hold the pod on a node without lxcfs-rs.
    let new_volumes: Vec<Value> = targets
        .iter()
        .filter(|t| existing(&t.volume).is_none() && used.contains(&t.volume.as_str()))
        .map(|t| {
            json!({
                "name": t.volume,
                "hostPath": {"path": t.host_path, "type": t.host_path_type},
            })
        })
        .collect();
    if !new_volumes.is_empty() {
        // Volumes before the mounts that use them, so every prefix of the patch is a pod
        // the apiserver would accept.
        let mut volume_ops = Vec::new();
        append(
            &mut volume_ops,
            &pointer(&["spec", "volumes"]),
            volumes.is_none(),
            new_volumes,
        );
        ops.splice(0..0, volume_ops);
    }
    Ok(PodPatch::Ops { ops, mounts })
}

/// Appends `items` to the array at `path`: one `add` of the whole array when it is absent,
/// one `add` at `path/-` per item otherwise.
fn append(ops: &mut Vec<Value>, path: &str, absent: bool, items: Vec<Value>) {
    if absent {
        ops.push(json!({"op": "add", "path": path, "value": items}));
    } else {
        let end = format!("{path}/-");
        ops.extend(
            items
                .into_iter()
                .map(|item| json!({"op": "add", "path": end, "value": item})),
        );
    }
}

/// Whether two mount paths name the same place (`/proc/meminfo/` is `/proc/meminfo`).
fn same_path(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// An RFC 6901 JSON pointer of `tokens`, each escaped (`~` as `~0`, `/` as `~1`), so a key
/// holding either can never address another member.
pub fn pointer(tokens: &[&str]) -> String {
    tokens
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn targets() -> Vec<Injected> {
        targets::injected(Path::new("/var/lib/lxcfs"))
    }

    fn review_of(pod: Value) -> Reviewed {
        let body = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "operation": "CREATE",
                "namespace": "ns",
                "object": pod,
            },
        });
        let options = Options {
            mount_point: "/var/lib/lxcfs".into(),
            namespace_opted_in: false,
        };
        review(body.to_string().as_bytes(), &options).unwrap()
    }

    #[test]
    fn windows_pods_and_odd_annotations_are_left_alone_and_said_so() {
        let annotated = |value: &str| json!({"annotations": {INJECT_ANNOTATION: value}});
        let windows = review_of(json!({
            "metadata": annotated("true"),
            "spec": {"os": {"name": "windows"}, "containers": [{"name": "a"}]},
        }));
        assert!(windows.response.patch.is_none() && windows.note.contains("Windows"));
        let odd = review_of(json!({
            "metadata": annotated("yes"),
            "spec": {"containers": [{"name": "a"}]},
        }));
        assert!(odd.response.patch.is_none());
        assert!(odd.response.warnings[0].contains("neither"), "{odd:?}");
        let linux = review_of(json!({
            "metadata": annotated("true"),
            "spec": {"os": {"name": "linux"}, "containers": [{"name": "a"}]},
        }));
        assert_eq!(linux.injected, targets().len());
        assert_eq!(
            linux.log_line(),
            format!(
                "review uid=u pod=ns/- injected={} (injected)",
                targets().len()
            )
        );
    }

    #[test]
    fn pointers_escape_tilde_and_slash() {
        assert_eq!(pointer(&["spec", "volumes"]), "/spec/volumes");
        assert_eq!(pointer(&["a/b", "c~d", "~1"]), "/a~1b/c~0d/~01");
        assert_eq!(pointer(&[]), "");
    }

    #[test]
    fn opt_in_follows_the_annotation_then_the_namespace() {
        let pod = |v: Value| json!({"metadata": {"annotations": {INJECT_ANNOTATION: v}}});
        assert_eq!(opted_in(&pod(json!("true")), false), (true, vec![]));
        assert_eq!(opted_in(&pod(json!("false")), true), (false, vec![]));
        assert_eq!(opted_in(&json!({}), true), (true, vec![]));
        assert_eq!(opted_in(&json!({}), false), (false, vec![]));
        let (yes, warnings) = opted_in(&pod(json!("yes")), false);
        assert!(!yes && warnings[0].contains("\"yes\""), "{warnings:?}");
        let (yes, warnings) = opted_in(&pod(json!(true)), true);
        assert!(yes && warnings.len() == 1);
    }

    #[test]
    fn a_pod_without_volumes_gets_whole_arrays() {
        let pod = json!({"spec": {"containers": [{"name": "a"}]}});
        let PodPatch::Ops { ops, mounts } = pod_patch(&pod, &targets()).unwrap() else {
            panic!("conflict")
        };
        assert_eq!(mounts, targets().len());
        assert_eq!(ops.len(), 2, "{ops:?}");
        assert_eq!(ops[0]["path"], "/spec/volumes");
        assert_eq!(ops[1]["path"], "/spec/containers/0/volumeMounts");
    }

    #[test]
    fn wrong_types_are_errors_not_panics() {
        for pod in [
            json!({}),
            json!({"spec": 1}),
            json!({"spec": {"volumes": {}, "containers": []}}),
            json!({"spec": {"containers": {}}}),
            json!({"spec": {"containers": [1]}}),
            json!({"spec": {"initContainers": [{"volumeMounts": "x"}]}}),
        ] {
            assert!(pod_patch(&pod, &targets()).is_err(), "{pod}");
        }
    }

    #[test]
    fn a_foreign_volume_of_our_name_is_a_conflict() {
        let pod = json!({"spec": {
            "volumes": [{"name": "lxcfs-rs-proc-meminfo", "emptyDir": {}}],
            "containers": [{"name": "a"}],
        }});
        assert!(matches!(
            pod_patch(&pod, &targets()).unwrap(),
            PodPatch::Conflict(m) if m.contains("lxcfs-rs-proc-meminfo")
        ));
    }

    #[test]
    fn a_container_added_after_injection_gets_only_its_mounts() {
        // What reinvocation (reinvocationPolicy: IfNeeded) sees after another webhook added
        // a container to a pod injected before.
        let pod = json!({"spec": {"containers": [{"name": "a"}]}});
        let PodPatch::Ops { ops, .. } = pod_patch(&pod, &targets()).unwrap() else {
            panic!("conflict")
        };
        let mut injected = json!({"spec": {
            "volumes": ops[0]["value"],
            "containers": [{"name": "a", "volumeMounts": ops[1]["value"]}, {"name": "late"}],
        }});
        let PodPatch::Ops { ops, mounts } = pod_patch(&injected, &targets()).unwrap() else {
            panic!("conflict")
        };
        assert_eq!(mounts, targets().len());
        assert_eq!(ops.len(), 1, "{ops:?}");
        assert_eq!(ops[0]["path"], "/spec/containers/1/volumeMounts");
        injected["spec"]["containers"][1]["volumeMounts"] = ops[0]["value"].clone();
        assert_eq!(
            pod_patch(&injected, &targets()).unwrap(),
            PodPatch::Ops {
                ops: vec![],
                mounts: 0
            }
        );
    }

    #[test]
    fn volumes_nothing_mounts_are_not_added() {
        let all_mounted: Vec<Value> = targets()
            .iter()
            .map(|t| json!({"name": "own", "mountPath": t.mount_path}))
            .collect();
        let pod = json!({"spec": {"containers": [{"name": "a", "volumeMounts": all_mounted}]}});
        assert_eq!(
            pod_patch(&pod, &targets()).unwrap(),
            PodPatch::Ops {
                ops: vec![],
                mounts: 0
            }
        );
    }

    mod prop {
        use proptest::prelude::*;

        use super::*;

        /// A mount path: one of ours (sometimes with a trailing slash) or another.
        fn mount_path() -> impl Strategy<Value = String> {
            let ours: Vec<String> = targets().into_iter().map(|t| t.mount_path).collect();
            prop_oneof![
                proptest::sample::select(ours.clone()),
                proptest::sample::select(ours).prop_map(|p| format!("{p}/")),
                "/[a-z]{1,8}",
            ]
        }

        /// A volume: ours as injected, ours with another path (a conflict), or the pod's own.
        fn volume() -> impl Strategy<Value = Value> {
            let names: Vec<String> = targets().into_iter().map(|t| t.volume).collect();
            prop_oneof![
                proptest::sample::select(targets()).prop_map(|t| json!({
                    "name": t.volume,
                    "hostPath": {"path": t.host_path, "type": t.host_path_type},
                })),
                proptest::sample::select(names)
                    .prop_map(|n| json!({"name": n, "hostPath": {"path": "/elsewhere"}})),
                "[a-z]{1,8}".prop_map(|n| json!({"name": n, "emptyDir": {}})),
            ]
        }

        /// A container with no, an empty or some volumeMounts, and a field of its own.
        fn container() -> impl Strategy<Value = Value> {
            (
                "[a-z]{1,8}",
                proptest::option::of(proptest::collection::vec(
                    ("[a-z]{1,8}", mount_path()),
                    0..4,
                )),
            )
                .prop_map(|(name, mounts)| {
                    let mut c = json!({"name": name, "futureField": {"x": [1, 2]}});
                    if let Some(mounts) = mounts {
                        c["volumeMounts"] = mounts
                            .into_iter()
                            .map(|(n, p)| json!({"name": n, "mountPath": p}))
                            .collect();
                    }
                    c
                })
        }

        fn pod() -> impl Strategy<Value = Value> {
            (
                proptest::option::of(proptest::collection::vec(volume(), 0..4)),
                proptest::option::of(proptest::collection::vec(container(), 0..3)),
                proptest::collection::vec(container(), 0..3),
            )
                .prop_map(|(volumes, init, containers)| {
                    let mut spec = json!({"containers": containers, "futureSpec": true});
                    if let Some(v) = volumes {
                        spec["volumes"] = Value::Array(v);
                    }
                    if let Some(i) = init {
                        spec["initContainers"] = Value::Array(i);
                    }
                    json!({"spec": spec})
                })
        }

        fn apply(pod: &Value, ops: &[Value]) -> Value {
            let patch: json_patch::Patch =
                serde_json::from_value(Value::Array(ops.to_vec())).expect("RFC 6902");
            let mut patched = pod.clone();
            json_patch::patch(&mut patched, &patch).expect("the patch applies");
            patched
        }

        proptest! {
            /// Any pod: a conflict exactly when a volume of our name is not ours; otherwise
            /// the patch applies, only adds, keeps everything, gives every container each
            /// target path exactly once, and a second pass adds nothing.
            #[test]
            fn patches_apply_complete_and_idempotent(pod in pod()) {
                let all = targets();
                let foreign = pod["spec"]["volumes"].as_array().into_iter().flatten().any(|v| {
                    all.iter().any(|t| v["name"] == t.volume.as_str()
                        && v["hostPath"]["path"] != t.host_path.as_str())
                });
                let result = pod_patch(&pod, &all).unwrap();
                let PodPatch::Ops { ops, mounts } = result else {
                    prop_assert!(foreign);
                    return Ok(());
                };
                prop_assert!(!foreign);
                prop_assert!(ops.iter().all(|op| op["op"] == "add"));
                let patched = apply(&pod, &ops);
                prop_assert_eq!(&patched["spec"]["futureSpec"], &json!(true));
                let mut counted = 0;
                for list in CONTAINER_LISTS {
                    for (i, c) in patched["spec"][list].as_array().into_iter().flatten().enumerate() {
                        prop_assert_eq!(&c["futureField"], &json!({"x": [1, 2]}));
                        let before = pod["spec"][list][i]["volumeMounts"]
                            .as_array()
                            .map_or(0, Vec::len);
                        let now = c["volumeMounts"].as_array().map_or(0, Vec::len);
                        counted += now - before;
                        for t in &all {
                            let at = c["volumeMounts"].as_array().into_iter().flatten()
                                .filter(|m| same_path(m["mountPath"].as_str().unwrap(), &t.mount_path))
                                .count();
                            // The pod's own duplicates stay; ours never add a second one.
                            prop_assert!(at >= 1);
                            if at > 1 {
                                prop_assert!(!c["volumeMounts"].as_array().unwrap().iter()
                                    .any(|m| m["name"] == t.volume.as_str()
                                        && m["readOnly"] == true));
                            }
                        }
                    }
                }
                prop_assert_eq!(counted, mounts);
                // Every volume a container mounts exists once the patch is applied.
                let volumes = patched["spec"]["volumes"].as_array().cloned().unwrap_or_default();
                for list in CONTAINER_LISTS {
                    for c in patched["spec"][list].as_array().into_iter().flatten() {
                        for m in c["volumeMounts"].as_array().into_iter().flatten() {
                            if all.iter().any(|t| m["name"] == t.volume.as_str()) {
                                prop_assert!(volumes.iter().any(|v| v["name"] == m["name"]));
                            }
                        }
                    }
                }
                prop_assert_eq!(
                    pod_patch(&patched, &all).unwrap(),
                    PodPatch::Ops { ops: vec![], mounts: 0 }
                );
            }
        }
    }
}
