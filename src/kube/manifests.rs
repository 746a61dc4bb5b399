//! `lxcfs-rs kube manifests`: everything a cluster needs, as one YAML stream for
//! `kubectl apply -f -`: the Namespace, the DaemonSet that serves the files on every node,
//! and the injection into opted-in pods (the webhook with freshly generated certificates, a
//! pair of MutatingAdmissionPolicies, or nothing).
//!
//! The objects are built as JSON values and printed as YAML, keys in the order people
//! expect (`apiVersion`, `kind`, `metadata`, `name` first, then alphabetical), so the output
//! is deterministic apart from the certificates; `packaging/kubernetes/` is this output.

use std::hash::Hasher;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::ValueEnum;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Value, json};
use thiserror::Error;

use super::certs::{self, CertError, Certs};
use super::targets::{self, INJECT_ANNOTATION, NAMESPACE_LABEL, NAMESPACE_LABEL_VALUE};
use super::webhook::{MUTATE_NAMESPACE_PATH, MUTATE_PATH, READYZ_PATH};

/// The namespace everything lives in unless `--namespace` says otherwise.
pub const DEFAULT_NAMESPACE: &str = "lxcfs-rs";

/// The name of the DaemonSet and the webhook configuration, and the label every object carries.
pub const NAME: &str = "lxcfs-rs";

/// The name of the webhook's Deployment, Service and PodDisruptionBudget.
pub const WEBHOOK_NAME: &str = "lxcfs-rs-webhook";

/// The webhook's Secret (`kubernetes.io/tls`: `tls.crt`, `tls.key`, and `ca.crt`).
pub const TLS_SECRET: &str = "lxcfs-rs-webhook-tls";

/// The label every object carries, and the one selectors match on.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";

/// The port the webhook server listens on inside its pod (unprivileged, so it runs as
/// nobody); the Service maps 443 to it.
pub const WEBHOOK_PORT: u16 = 8443;

/// Where the image puts the binary (`FROM scratch`, `ENTRYPOINT ["/lxcfs-rs"]`): exec
/// probes need its full path, since a scratch image has no shell and no `PATH` lookup.
pub const BINARY_IN_IMAGE: &str = "/lxcfs-rs";

/// Namespaces never injected into, besides the one lxcfs-rs runs in: the daemon's own
/// pods must not depend on the files they serve.
pub const EXCLUDED_NAMESPACES: &[&str] = &["kube-system"];

/// How opted-in pods get the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Inject {
    /// A mutating admission webhook (two replicas, certificates generated now): works on
    /// every Kubernetes release.
    Webhook,
    /// MutatingAdmissionPolicies (admissionregistration.k8s.io/v1, Kubernetes 1.36 and
    /// later): no server, no certificate.
    Policy,
    /// Nothing: the Namespace and the DaemonSet only (pods bind the files themselves).
    None,
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The namespace of the DaemonSet and the webhook (a DNS-1123 label).
    pub namespace: String,
    /// The lxcfs-rs image, for the DaemonSet and the webhook alike.
    pub image: String,
    /// Where the daemon mounts on every node (absolute).
    pub mount_point: String,
    /// How pods get the files.
    pub inject: Inject,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            image: default_image(),
            mount_point: crate::cli::DEFAULT_MOUNTPOINT.to_owned(),
            inject: Inject::Webhook,
        }
    }
}

/// Why the manifests could not be made.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The namespace is not a DNS-1123 label, which Kubernetes requires.
    #[error(
        "namespace {0:?} is not a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
    )]
    Namespace(String),
    /// The image reference is empty or has whitespace.
    #[error("image {0:?} must be non-empty and contain no whitespace")]
    Image(String),
    /// The mount point is not usable in a hostPath and on the daemon's command line.
    #[error(transparent)]
    MountPoint(#[from] targets::MountPointError),
    /// The webhook's certificates could not be made.
    #[error(transparent)]
    Certs(#[from] CertError),
    /// A document could not be written as YAML.
    #[error("writing YAML")]
    Yaml(#[from] serde_norway::Error),
}

/// `lxcfs-rs:<crate version>`, the tag the project's image is built with.
pub fn default_image() -> String {
    format!("lxcfs-rs:{}", env!("CARGO_PKG_VERSION"))
}

/// `namespace` if it is a DNS-1123 label (what Kubernetes requires of namespace names).
pub fn check_namespace(namespace: &str) -> Result<String, ManifestError> {
    let b = namespace.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-';
    if ok {
        Ok(namespace.to_owned())
    } else {
        Err(ManifestError::Namespace(namespace.to_owned()))
    }
}

/// `image` if it is non-empty and has no whitespace or control character (the registry
/// checks the rest when the kubelet pulls it).
pub fn check_image(image: &str) -> Result<String, ManifestError> {
    if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(ManifestError::Image(image.to_owned()))
    } else {
        Ok(image.to_owned())
    }
}

impl Options {
    /// Checks every field (the command line checks them as it parses; this covers callers
    /// of the library).
    pub fn check(&self) -> Result<(), ManifestError> {
        check_namespace(&self.namespace)?;
        check_image(&self.image)?;
        targets::check_mount_point(&self.mount_point)?;
        Ok(())
    }

    /// The names the webhook's serving certificate is for: how the apiserver reaches the
    /// Service (`<service>.<namespace>.svc`), short and fully qualified.
    pub fn webhook_dns_names(&self) -> Vec<String> {
        vec![
            format!("{WEBHOOK_NAME}.{}.svc", self.namespace),
            format!("{WEBHOOK_NAME}.{}.svc.cluster.local", self.namespace),
        ]
    }
}

/// Every document for `opts`, in the order `kubectl apply` should create them: for the
/// webhook, certificates are generated here (so every call rotates them).
pub fn documents(opts: &Options) -> Result<Vec<Value>, ManifestError> {
    opts.check()?;
    let mut docs = vec![namespace(opts), daemonset(opts)];
    match opts.inject {
        Inject::Webhook => {
            let certs = certs::generate(&opts.webhook_dns_names())?;
            docs.extend(webhook(opts, &certs));
        }
        Inject::Policy => docs.extend(policy(opts)),
        Inject::None => {}
    }
    Ok(docs)
}

/// The documents as one YAML stream, each after a `---` line.
pub fn to_yaml(docs: &[Value]) -> Result<String, ManifestError> {
    let mut out = String::new();
    for doc in docs {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(&Ordered(doc))?);
    }
    Ok(out)
}

/// What `lxcfs-rs kube manifests` prints for `opts`.
pub fn render(opts: &Options) -> Result<String, ManifestError> {
    to_yaml(&documents(opts)?)
}

/// The labels of every object of `app` (selectors use the name label alone, which never
/// changes between versions: a DaemonSet's selector is immutable).
fn labels(app: &str) -> Value {
    json!({ NAME_LABEL: app, "app.kubernetes.io/part-of": NAME })
}

/// The Namespace: privileged pods allowed (the DaemonSet needs `privileged` and
/// `hostPID`), and its name label spelled out because both webhooks and the policy exclude
/// it by that label (the apiserver sets the same label itself).
pub fn namespace(opts: &Options) -> Value {
    let mut meta_labels = labels(NAME);
    let map = meta_labels.as_object_mut().expect("labels are an object");
    map.insert(
        "kubernetes.io/metadata.name".into(),
        opts.namespace.clone().into(),
    );
    for mode in ["enforce", "audit", "warn"] {
        map.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            "privileged".into(),
        );
    }
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": opts.namespace, "labels": meta_labels },
    })
}

/// The DaemonSet serving the files on every node.
///
/// - `hostPID`: readers must be seen with their host pids, and `/proc/1` must be the
///   host's init, whose mount namespace `--host-mount-ns` joins: the daemon then mounts on
///   the host itself, so there is no hostPath volume at all (the kubelet never `stat`s a
///   mount point that may be stale, and nothing needs `Bidirectional` propagation).
/// - `privileged`: `CAP_SYS_ADMIN` for `setns` and `mount`, and `/dev/fuse`.
/// - `maxSurge: 1, maxUnavailable: 0`: the new pod starts while the old one serves and
///   takes the live mount over (`--takeover-if-running`); the old one then idles until
///   SIGTERM (`--wait-after-handoff`), so its exit neither unmounts nor makes the kubelet
///   restart it into taking the mount back. No reader ever sees a failed read.
/// - readiness, never liveness: a kubelet restart of the container is the one event that
///   would break every pod's files, so a slow probe may only hold up a rollout.
/// - requests and no limits: a CPU limit would throttle every container's reads, and an
///   OOM kill of the supervisor would lose the FUSE connection.
/// - `--enable-cfs`: pods have CFS quotas, not cpusets, so CPU counts come from the quota.
pub fn daemonset(opts: &Options) -> Value {
    let mp = &opts.mount_point;
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": { "name": NAME, "namespace": opts.namespace, "labels": labels(NAME) },
        "spec": {
            "selector": { "matchLabels": { NAME_LABEL: NAME } },
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": { "maxSurge": 1, "maxUnavailable": 0 },
            },
            "template": {
                "metadata": { "labels": labels(NAME) },
                "spec": {
                    "hostPID": true,
                    "priorityClassName": "system-node-critical",
                    // Every node, tainted or not: a pod scheduled there may opt in.
                    "tolerations": [{ "operator": "Exists" }],
                    // After a handoff the old pod only idles: SIGTERM ends it at once.
                    "terminationGracePeriodSeconds": 30,
                    // The daemon never calls the API.
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "containers": [{
                        "name": NAME,
                        "image": opts.image,
                        "args": [
                            "--host-mount-ns",
                            "--takeover-if-running",
                            "--wait-after-handoff",
                            "--enable-cfs",
                            mp,
                        ],
                        "securityContext": { "privileged": true },
                        "resources": { "requests": { "cpu": "10m", "memory": "32Mi" } },
                        // `probe` bounds its own read to 1 s; the timeout leaves it room.
                        "readinessProbe": {
                            "exec": {
                                "command": [BINARY_IN_IMAGE, "--host-mount-ns", "probe", mp],
                            },
                            "periodSeconds": 10,
                            "timeoutSeconds": 3,
                            "failureThreshold": 3,
                        },
                    }],
                },
            },
        },
    })
}

/// A 64-bit FNV-1a digest of `text` in hex: changes whenever the certificate does, so
/// the webhook's pods restart onto a rotated one (not a security measure).
fn fingerprint(text: &str) -> String {
    let mut h = fnv::FnvHasher::default();
    h.write(text.as_bytes());
    format!("{:016x}", h.finish())
}

/// The namespace selector of an injection: namespaces whose [`NAMESPACE_LABEL`] satisfies
/// `operator` (`In` or `NotIn` [`NAMESPACE_LABEL_VALUE`]; `None` for any), never
/// kube-system or our own.
fn namespace_selector(opts: &Options, operator: Option<&str>) -> Value {
    let mut excluded: Vec<&str> = EXCLUDED_NAMESPACES.to_vec();
    excluded.push(&opts.namespace);
    let mut exprs = Vec::new();
    if let Some(op) = operator {
        exprs.push(json!({
            "key": NAMESPACE_LABEL, "operator": op, "values": [NAMESPACE_LABEL_VALUE],
        }));
    }
    exprs.push(json!({
        "key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": excluded,
    }));
    json!({ "matchExpressions": exprs })
}

/// What both injections match: pods being created.
fn pod_create_rule() -> Value {
    json!({
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["CREATE"],
        "resources": ["pods"],
    })
}

/// The webhook, given its certificates: Secret, Deployment, Service, PodDisruptionBudget,
/// MutatingWebhookConfiguration.
///
/// Two webhooks, because a webhook can select namespaces by label but pods only by label,
/// never by annotation: `pods.lxcfs-rs.io` sends pods of unlabelled namespaces to
/// `/mutate` (which injects pods annotated `"true"`), `namespaces.lxcfs-rs.io` sends pods
/// of labelled namespaces to `/mutate-namespace` (which injects unless annotated
/// `"false"`). `failurePolicy: Ignore`: an unreachable webhook must never stop pods from
/// being created.
pub fn webhook(opts: &Options, certs: &Certs) -> Vec<Value> {
    let ns = &opts.namespace;
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": TLS_SECRET, "namespace": ns, "labels": labels(WEBHOOK_NAME) },
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": BASE64.encode(&certs.cert_pem),
            "tls.key": BASE64.encode(&certs.key_pem),
            "ca.crt": BASE64.encode(&certs.ca_pem),
        },
    });
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": WEBHOOK_NAME, "namespace": ns, "labels": labels(WEBHOOK_NAME) },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { NAME_LABEL: WEBHOOK_NAME } },
            "template": {
                "metadata": {
                    "labels": labels(WEBHOOK_NAME),
                    // A rotation (a re-applied Secret) rolls the pods at once, rather than
                    // waiting for the kubelet to update their volume and the server to
                    // notice (`--recheck-every`).
                    "annotations": { "lxcfs-rs.io/tls-fingerprint": fingerprint(&certs.cert_pem) },
                },
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 65534,
                        "runAsGroup": 65534,
                        "seccompProfile": { "type": "RuntimeDefault" },
                    },
                    // Two replicas on two nodes where possible, so one node's loss does
                    // not leave pods uninjected.
                    "affinity": {
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [{
                                "weight": 100,
                                "podAffinityTerm": {
                                    "labelSelector": { "matchLabels": { NAME_LABEL: WEBHOOK_NAME } },
                                    "topologyKey": "kubernetes.io/hostname",
                                },
                            }],
                        },
                    },
                    "containers": [{
                        "name": "webhook",
                        "image": opts.image,
                        "args": [
                            "kube", "webhook",
                            "--cert", "/tls/tls.crt",
                            "--key", "/tls/tls.key",
                            "--listen", format!("0.0.0.0:{WEBHOOK_PORT}"),
                            "--mount-point", opts.mount_point,
                        ],
                        "ports": [{ "name": "https", "containerPort": WEBHOOK_PORT }],
                        "readinessProbe": {
                            "httpGet": { "path": READYZ_PATH, "port": "https", "scheme": "HTTPS" },
                            "periodSeconds": 5,
                        },
                        "resources": { "requests": { "cpu": "10m", "memory": "16Mi" } },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": { "drop": ["ALL"] },
                        },
                        "volumeMounts": [{ "name": "tls", "mountPath": "/tls", "readOnly": true }],
                    }],
                    "volumes": [{
                        "name": "tls",
                        "secret": {
                            "secretName": TLS_SECRET,
                            "items": [
                                { "key": "tls.crt", "path": "tls.crt" },
                                { "key": "tls.key", "path": "tls.key" },
                            ],
                        },
                    }],
                },
            },
        },
    });
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": WEBHOOK_NAME, "namespace": ns, "labels": labels(WEBHOOK_NAME) },
        "spec": {
            "selector": { NAME_LABEL: WEBHOOK_NAME },
            "ports": [{ "name": "https", "port": 443, "targetPort": "https" }],
        },
    });
    let pdb = json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": { "name": WEBHOOK_NAME, "namespace": ns, "labels": labels(WEBHOOK_NAME) },
        "spec": {
            "minAvailable": 1,
            "selector": { "matchLabels": { NAME_LABEL: WEBHOOK_NAME } },
        },
    });
    let ca_bundle = BASE64.encode(&certs.ca_pem);
    let one = |name: &str, path: &str, operator: &str| {
        json!({
            "name": name,
            "admissionReviewVersions": ["v1"],
            "clientConfig": {
                "caBundle": ca_bundle,
                "service": { "name": WEBHOOK_NAME, "namespace": ns, "path": path, "port": 443 },
            },
            "failurePolicy": "Ignore",
            "matchPolicy": "Equivalent",
            "namespaceSelector": namespace_selector(opts, Some(operator)),
            // Another webhook may add containers after ours: run again so they get the
            // files too (the injection is idempotent).
            "reinvocationPolicy": "IfNeeded",
            "rules": [pod_create_rule()],
            "sideEffects": "None",
            "timeoutSeconds": 5,
        })
    };
    let configuration = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": { "name": NAME, "labels": labels(WEBHOOK_NAME) },
        "webhooks": [
            one("pods.lxcfs-rs.io", MUTATE_PATH, "NotIn"),
            one("namespaces.lxcfs-rs.io", MUTATE_NAMESPACE_PATH, "In"),
        ],
    });
    vec![secret, deployment, service, pdb, configuration]
}

/// `s` as a CEL string literal (CEL's double-quoted strings take JSON's escapes).
fn cel_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// The CEL list of what is injected: one map per volume, one line each.
fn cel_injected(mount_point: &str) -> String {
    let lines: Vec<String> = targets::injected(Path::new(mount_point))
        .iter()
        .map(|i| {
            format!(
                "  {{\"volume\": {}, \"hostPath\": {}, \"hostPathType\": {}, \"mountPath\": {}}}",
                cel_string(&i.volume),
                cel_string(&i.host_path),
                cel_string(i.host_path_type),
                cel_string(&i.mount_path)
            )
        })
        .collect();
    format!("[\n{}\n]", lines.join(",\n"))
}

/// The CEL JSONPatch adding the missing mounts to the container at `{base}/<i>` for each
/// container `c` of `list` (`containers` or `initContainers`): `volumeMounts` created when
/// absent, a mount skipped when the container already mounts something at that path.
fn cel_mounts(list: &str) -> String {
    format!(
        r#"object.spec.{list}.transformList(i, c,
  (has(c.volumeMounts) ? [] : [
    JSONPatch{{op: "add", path: "/spec/{list}/" + string(i) + "/volumeMounts", value: []}}
  ]) +
  variables.injected
    .filter(m, !has(c.volumeMounts) || !c.volumeMounts.exists(vm, (vm.mountPath == m.mountPath || vm.mountPath == m.mountPath + "/")))
    .map(m, JSONPatch{{
      op: "add",
      path: "/spec/{list}/" + string(i) + "/volumeMounts/-",
      value: Object.spec.{list}.volumeMounts{{name: m.volume, mountPath: m.mountPath, readOnly: true}}
    }})
).flatten()"#
    )
}

/// The policy for pods opted in by their annotation (namespaces without the label).
pub const POLICY_PODS: &str = "lxcfs-rs-pods";

/// The policy for pods of labelled namespaces (unless the pod opts out).
pub const POLICY_NAMESPACES: &str = "lxcfs-rs-namespaces";

/// The MutatingAdmissionPolicies and their bindings (admissionregistration.k8s.io/v1, GA in
/// Kubernetes 1.36): the webhook's injection as CEL evaluated in the apiserver, so no
/// server, certificate or replica to keep up.
///
/// Two policies, as there are two webhooks, one per side of the namespace label, selected
/// by `namespaceSelector`: the apiserver evaluates `matchConditions` without the
/// namespace (`namespaceObject` is null there), so a condition cannot read the label, and
/// pods of unlabelled namespaces that did not opt in never reach the mutations.
pub fn policy(opts: &Options) -> Vec<Value> {
    let annotation = format!(
        "object.metadata.?annotations[?{}].orValue(\"\")",
        cel_string(INJECT_ANNOTATION)
    );
    let mut docs = Vec::new();
    for (name, operator, condition, expression) in [
        (
            POLICY_PODS,
            "NotIn",
            "annotated-true",
            format!("{annotation} == \"true\""),
        ),
        (
            POLICY_NAMESPACES,
            "In",
            "not-annotated-false",
            format!("{annotation} != \"false\""),
        ),
    ] {
        docs.push(one_policy(
            opts,
            name,
            namespace_selector(opts, Some(operator)),
            json!([
                { "name": condition, "expression": expression },
                // As the webhook: Windows pods have no /proc to bind over.
                {
                    "name": "not-windows",
                    "expression": "!has(object.spec.os) || object.spec.os.name != \"windows\"",
                },
                // As the webhook: a pod with a volume of one of our names that is not ours
                // is left alone (injecting would mount its volume where our file belongs).
                {
                    "name": "no-foreign-volume-of-our-names",
                    "expression": format!(
                        "!has(object.spec.volumes) ||\n{}.all(m,\n  !object.spec.volumes.exists(v, v.name == m.volume &&\n    v.?hostPath.?path.orValue(\"\") != m.hostPath))",
                        cel_injected(&opts.mount_point)
                    ),
                },
            ]),
        ));
        docs.push(json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingAdmissionPolicyBinding",
            "metadata": { "name": name, "labels": labels(NAME) },
            "spec": { "policyName": name },
        }));
    }
    docs
}

/// One MutatingAdmissionPolicy `name` injecting into the pods of the namespaces
/// `namespace_selector` selects that pass `match_conditions`.
fn one_policy(
    opts: &Options,
    name: &str,
    namespace_selector: Value,
    match_conditions: Value,
) -> Value {
    // Only volumes some container will mount (as the webhook): the kubelet checks a
    // hostPath volume of type File even when nothing mounts it, which would hold the pod
    // on a node without lxcfs-rs for nothing.
    let volumes = r#"(has(object.spec.volumes) ? [] : [
  JSONPatch{op: "add", path: "/spec/volumes", value: []}
]) +
variables.injected
  .filter(m, !has(object.spec.volumes) || !object.spec.volumes.exists(v, v.name == m.volume))
  .filter(m, variables.containers.exists(c,
    !has(c.volumeMounts) ||
    !c.volumeMounts.exists(vm, (vm.mountPath == m.mountPath || vm.mountPath == m.mountPath + "/")) ||
    c.volumeMounts.exists(vm, vm.name == m.volume)))
  .map(m, JSONPatch{
    op: "add",
    path: "/spec/volumes/-",
    value: Object.spec.volumes{
      name: m.volume,
      hostPath: Object.spec.volumes.hostPath{path: m.hostPath, type: m.hostPathType}
    }
  })"#;
    let init_mounts = format!(
        "has(object.spec.initContainers) ?\n{} :\n[]",
        cel_mounts("initContainers")
    );
    let json_patch = |expression: String| json!({ "patchType": "JSONPatch", "jsonPatch": { "expression": expression } });
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicy",
        "metadata": { "name": name, "labels": labels(NAME) },
        "spec": {
            "matchConstraints": {
                "resourceRules": [pod_create_rule()],
                "namespaceSelector": namespace_selector,
                "matchPolicy": "Equivalent",
            },
            "matchConditions": match_conditions,
            "variables": [
                { "name": "injected", "expression": cel_injected(&opts.mount_point) },
                {
                    "name": "containers",
                    "expression": "object.spec.containers +\n(has(object.spec.initContainers) ? object.spec.initContainers : [])",
                },
            ],
            // Volumes first, then each container's mounts of them.
            "mutations": [
                json_patch(volumes.to_owned()),
                json_patch(cel_mounts("containers")),
                json_patch(init_mounts),
            ],
            // Pods are still created when the policy fails; and it runs again after other
            // mutations that may add containers (it is idempotent).
            "failurePolicy": "Ignore",
            "reinvocationPolicy": "IfNeeded",
        },
    })
}

/// Where a key goes among its siblings: `apiVersion`, `kind`, `metadata`, then `name` and
/// `namespace` (list items read best led by their name), then the rest alphabetically.
fn key_rank(key: &str) -> u8 {
    match key {
        "apiVersion" => 0,
        "kind" => 1,
        "metadata" => 2,
        "name" => 3,
        "namespace" => 4,
        _ => 5,
    }
}

/// A JSON value serialised with its object keys in [`key_rank`] order.
struct Ordered<'a>(&'a Value);

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort_by_key(|k| (key_rank(k), k.as_str()));
                let mut out = serializer.serialize_map(Some(keys.len()))?;
                for key in keys {
                    out.serialize_entry(key, &Ordered(&map[key]))?;
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(&Ordered(item))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn opts(inject: Inject) -> Options {
        Options {
            inject,
            ..Options::default()
        }
    }

    /// The YAML parses back to exactly the documents (no value changed type or text on
    /// the way, e.g. "true" or "0.1.0" strings staying strings).
    #[test]
    fn yaml_round_trips_every_document() {
        for inject in [Inject::Webhook, Inject::Policy, Inject::None] {
            let docs = documents(&opts(inject)).unwrap();
            let yaml = to_yaml(&docs).unwrap();
            let back: Vec<Value> = serde_norway::Deserializer::from_str(&yaml)
                .map(|d| Value::deserialize(d).unwrap())
                .collect();
            assert_eq!(back, docs, "{inject:?}");
        }
    }

    #[test]
    fn keys_come_in_reading_order() {
        let yaml = to_yaml(&[daemonset(&Options::default())]).unwrap();
        assert!(
            yaml.starts_with("---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n"),
            "{yaml}"
        );
        assert!(yaml.contains("- name: lxcfs-rs\n"), "{yaml}");
        // CEL stays readable: multi-line strings are literal blocks, not escaped lines.
        let yaml = to_yaml(&policy(&Options::default())).unwrap();
        assert!(yaml.contains("expression: |"), "{yaml}");
    }

    #[test]
    fn documents_per_mode() {
        let kinds = |inject| -> Vec<String> {
            documents(&opts(inject))
                .unwrap()
                .iter()
                .map(|d| d["kind"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(kinds(Inject::None), ["Namespace", "DaemonSet"]);
        assert_eq!(
            kinds(Inject::Policy),
            [
                "Namespace",
                "DaemonSet",
                "MutatingAdmissionPolicy",
                "MutatingAdmissionPolicyBinding",
                "MutatingAdmissionPolicy",
                "MutatingAdmissionPolicyBinding"
            ]
        );
        assert_eq!(
            kinds(Inject::Webhook),
            [
                "Namespace",
                "DaemonSet",
                "Secret",
                "Deployment",
                "Service",
                "PodDisruptionBudget",
                "MutatingWebhookConfiguration"
            ]
        );
    }

    #[test]
    fn bad_input_is_refused() {
        for ns in ["Bad_NS", "", "-a", "a-", "a.b", &"a".repeat(64)] {
            let o = Options {
                namespace: ns.to_owned(),
                ..Options::default()
            };
            assert!(
                matches!(documents(&o), Err(ManifestError::Namespace(_))),
                "{ns:?}"
            );
        }
        assert!(check_namespace(&"a".repeat(63)).is_ok());
        assert!(check_namespace("lxcfs-rs-2").is_ok());
        for image in ["", "a b", "x\ty", "x\n"] {
            assert!(check_image(image).is_err(), "{image:?}");
        }
        assert!(check_image("registry.example:5000/lxcfs-rs@sha256:00").is_ok());
        for mp in ["", "/", "//", "var/lib/lxcfs", "/a b", "/a:b", "/a\nb"] {
            assert!(targets::check_mount_point(mp).is_err(), "{mp:?}");
        }
        assert!(targets::check_mount_point("/var/lib/lxcfs").is_ok());
        // One line each, naming the value.
        let msg = check_namespace("Bad_NS").unwrap_err().to_string();
        assert!(!msg.contains('\n') && msg.contains("\"Bad_NS\""), "{msg}");
    }

    #[test]
    fn mount_point_and_namespace_reach_every_place() {
        let o = Options {
            namespace: "lx".into(),
            mount_point: "/run/lxcfs".into(),
            inject: Inject::Policy,
            image: "img:1".into(),
        };
        let docs = documents(&o).unwrap();
        let ds = &docs[1]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(ds["args"].as_array().unwrap().last().unwrap(), "/run/lxcfs");
        assert_eq!(ds["image"], "img:1");
        assert_eq!(
            ds["readinessProbe"]["exec"]["command"],
            json!(["/lxcfs-rs", "--host-mount-ns", "probe", "/run/lxcfs"])
        );
        let policies: Vec<&Value> = docs
            .iter()
            .filter(|d| d["kind"] == "MutatingAdmissionPolicy")
            .collect();
        assert_eq!(policies.len(), 2);
        for (policy, operator) in policies.iter().zip(["NotIn", "In"]) {
            let injected = policy["spec"]["variables"][0]["expression"]
                .as_str()
                .unwrap();
            for i in targets::injected(Path::new("/run/lxcfs")) {
                assert!(injected.contains(&cel_string(&i.host_path)), "{injected}");
                assert!(injected.contains(&cel_string(&i.volume)), "{injected}");
            }
            assert!(!injected.contains("/var/lib/lxcfs"));
            let exprs =
                &policy["spec"]["matchConstraints"]["namespaceSelector"]["matchExpressions"];
            assert_eq!(exprs[0]["key"], NAMESPACE_LABEL);
            assert_eq!(exprs[0]["operator"], operator);
            assert_eq!(exprs[1]["values"], json!(["kube-system", "lx"]));
        }
    }

    /// The apiserver evaluates a policy's matchConditions without the namespace
    /// (`namespaceObject` is null there): a condition reading it would fail, and with
    /// `failurePolicy: Ignore` silently skip every pod it should inject.
    #[test]
    fn match_conditions_read_only_the_pod() {
        for policy in policy(&Options::default())
            .iter()
            .filter(|d| d["kind"] == "MutatingAdmissionPolicy")
        {
            let conditions = policy["spec"]["matchConditions"].as_array().unwrap();
            for condition in conditions {
                let expression = condition["expression"].as_str().unwrap();
                assert!(!expression.contains("namespaceObject"), "{expression}");
            }
            let opt_in = conditions[0]["expression"].as_str().unwrap();
            assert!(opt_in.contains(INJECT_ANNOTATION), "{opt_in}");
        }
    }

    /// The command lines the manifests run are the binary's own: parsed as `main` parses
    /// them (`--host-mount-ns` taken out first), they mean what the manifests intend.
    #[test]
    fn the_printed_command_lines_parse_as_intended() {
        use crate::cli::{Cli, Command, KubeArgs, KubeCommand, take_host_mount_ns};
        use clap::Parser;
        use std::path::PathBuf;

        let parse = |args: &Value| -> (Cli, bool) {
            let argv = std::iter::once("lxcfs-rs")
                .chain(args.as_array().unwrap().iter().map(|a| a.as_str().unwrap()))
                .map(std::ffi::OsString::from)
                .collect();
            let (rest, host_mount_ns) = take_host_mount_ns(argv);
            (Cli::try_parse_from(rest).unwrap(), host_mount_ns)
        };
        let o = Options {
            mount_point: "/run/l".into(),
            ..Options::default()
        };
        let ds = daemonset(&o);
        let c = &ds["spec"]["template"]["spec"]["containers"][0];
        let (cli, host_mount_ns) = parse(&c["args"]);
        assert!(host_mount_ns && cli.command.is_none());
        assert!(cli.daemon.takeover_if_running && cli.daemon.wait_after_handoff);
        assert!(cli.view.enable_cfs && !cli.daemon.takeover);
        assert_eq!(cli.daemon.mountpoint, PathBuf::from("/run/l"));

        let command = c["readinessProbe"]["exec"]["command"].as_array().unwrap();
        assert_eq!(command[0], BINARY_IN_IMAGE);
        let (cli, host_mount_ns) = parse(&Value::from(command[1..].to_vec()));
        let Some(Command::Probe(probe)) = cli.command else {
            panic!("the readiness probe does not run probe: {command:?}")
        };
        assert!(host_mount_ns);
        assert_eq!(probe.mountpoint, PathBuf::from("/run/l"));

        let certs = certs::generate(&o.webhook_dns_names()).unwrap();
        let deployment = &webhook(&o, &certs)[1];
        let c = &deployment["spec"]["template"]["spec"]["containers"][0];
        let (cli, host_mount_ns) = parse(&c["args"]);
        let Some(Command::Kube(KubeArgs {
            command: KubeCommand::Webhook(w),
        })) = cli.command
        else {
            panic!("the Deployment does not run kube webhook: {}", c["args"])
        };
        assert!(!host_mount_ns);
        assert_eq!(w.listen.port(), WEBHOOK_PORT);
        assert_eq!(w.mount_point, PathBuf::from("/run/l"));
        assert_eq!(
            (w.cert, w.key),
            (PathBuf::from("/tls/tls.crt"), PathBuf::from("/tls/tls.key"))
        );
    }

    #[test]
    fn the_webhook_deployment_restarts_on_a_new_certificate() {
        let o = Options::default();
        let a = certs::generate(&o.webhook_dns_names()).unwrap();
        let b = certs::generate(&o.webhook_dns_names()).unwrap();
        let fp = |c: &Certs| {
            webhook(&o, c)[1]["spec"]["template"]["metadata"]["annotations"]
                ["lxcfs-rs.io/tls-fingerprint"]
                .clone()
        };
        assert_ne!(fp(&a), fp(&b));
        assert_eq!(fp(&a), fp(&a));
    }
}
