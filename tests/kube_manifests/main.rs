//! `lxcfs-rs kube manifests`, run through the real binary: every document of every
//! `--inject` mode passes Kubernetes' own schemas (`kubernetes-validate --strict`, 1.30 to
//! 1.37; the MutatingAdmissionPolicy, GA in 1.36, for 1.36 and 1.37); the DaemonSet keeps
//! the properties the design rests on (hostPID, privileged, surge handoff, readiness without
//! liveness, no hostPath, no limits); the webhook's certificate verifies against its
//! `caBundle` for the Service's names and changes with every run; the real `kube webhook`,
//! started with the Deployment's arguments and the Secret's files, answers on the
//! configuration's paths under that trust ([`served`]); bad flags fail with one
//! line; and `packaging/kubernetes/` is exactly what the command prints (rewritten by
//! `LXCFS_RS_WRITE_PACKAGING=1 cargo test --test kube_manifests`), rendered by
//! `kubectl kustomize` when kubectl is installed.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod served;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;

use common::kube_validate::{RELEASES, validate};
use common::{assert_fails, assert_succeeds, describe, run_bin};

/// The releases that have admissionregistration.k8s.io/v1 MutatingAdmissionPolicy.
const POLICY_RELEASES: &[&str] = &["1.36.0", "1.37.0"];

/// The kinds of the policy mode's own documents.
const POLICY_KINDS: &[&str] = &["MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"];

/// What one run printed: each document's text (from its `---` line) and its value.
struct Printed {
    chunks: Vec<String>,
    docs: Vec<Value>,
}

impl Printed {
    /// The one document of `kind`.
    fn one(&self, kind: &str) -> &Value {
        let found: Vec<&Value> = self.docs.iter().filter(|d| d["kind"] == kind).collect();
        assert_eq!(found.len(), 1, "expected one {kind}, got {}", found.len());
        found[0]
    }

    /// The text of the documents whose kind `pick` accepts, in printed order.
    fn text_of(&self, pick: impl Fn(&str) -> bool) -> String {
        self.chunks
            .iter()
            .zip(&self.docs)
            .filter(|(_, d)| pick(d["kind"].as_str().unwrap_or_default()))
            .map(|(c, _)| c.as_str())
            .collect()
    }
}

/// Splits a YAML stream at its `---` lines, each part keeping its own.
fn split(text: &str) -> Vec<String> {
    let mut chunks: Vec<String> = Vec::new();
    for line in text.split_inclusive('\n') {
        if line == "---\n" {
            chunks.push(String::new());
        }
        chunks
            .last_mut()
            .unwrap_or_else(|| panic!("the stream does not start with ---:\n{text}"))
            .push_str(line);
    }
    chunks
}

/// `lxcfs-rs kube manifests ARGS`, which must succeed with nothing on stderr.
fn manifests(args: &[&str]) -> Printed {
    let mut all = vec!["kube", "manifests"];
    all.extend_from_slice(args);
    let out = run_bin(&all);
    assert_succeeds(&out, &format!("lxcfs-rs {all:?}"));
    assert!(out.stderr.is_empty(), "stderr: {}", describe(&out));
    let text = String::from_utf8(out.stdout).expect("UTF-8 YAML");
    let chunks = split(&text);
    let docs = chunks
        .iter()
        .map(|c| {
            serde_norway::from_str::<Value>(c).unwrap_or_else(|e| panic!("not YAML ({e}):\n{c}"))
        })
        .collect();
    Printed { chunks, docs }
}

/// Validates `text` (written to `name` under `dir`) for `releases`, panicking with the
/// validator's report on any error or warning.
fn assert_valid(dir: &Path, name: &str, text: &str, releases: &[&str]) {
    let path = dir.join(name);
    fs::write(&path, text).expect("writing the manifests");
    if let Err(report) = validate(&[&path], releases) {
        panic!("{name} does not validate for {releases:?}:\n{report}\n{text}");
    }
}

#[test]
fn every_mode_passes_kubernetes_validate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let other = [
        "--namespace",
        "node-files",
        "--image",
        "registry.example:5000/lxcfs-rs@sha256:0123",
        "--mount-point",
        "/run/lxcfs",
    ];
    let runs: Vec<(String, Vec<&str>)> = ["webhook", "policy", "none"]
        .iter()
        .flat_map(|mode| {
            let mut custom = vec!["--inject", mode];
            custom.extend_from_slice(&other);
            [
                (mode.to_string(), vec!["--inject", mode]),
                (format!("{mode}-custom"), custom),
            ]
        })
        .collect();
    for (run, args) in &runs {
        let mode = run.trim_end_matches("-custom");
        let printed = manifests(args);
        let general = printed.text_of(|k| !POLICY_KINDS.contains(&k));
        assert_valid(dir.path(), &format!("{run}.yaml"), &general, RELEASES);
        let policy = printed.text_of(|k| POLICY_KINDS.contains(&k));
        assert_eq!(policy.is_empty(), mode != "policy", "{run}");
        if mode == "policy" {
            let name = format!("{run}-policy.yaml");
            assert_valid(dir.path(), &name, &policy, POLICY_RELEASES);
            // The validator does check versions: 1.35 has no v1 policy.
            let path = dir.path().join(name);
            assert!(
                validate(&[&path], &["1.35.0"]).is_err(),
                "a v1 MutatingAdmissionPolicy passed for 1.35"
            );
        }
    }
}

#[test]
fn the_daemonset_keeps_the_files_alive() {
    for mode in ["webhook", "policy", "none"] {
        let printed = manifests(&["--inject", mode]);
        let ds = printed.one("DaemonSet");
        let spec = &ds["spec"];
        assert_eq!(spec["updateStrategy"]["type"], "RollingUpdate");
        assert_eq!(spec["updateStrategy"]["rollingUpdate"]["maxSurge"], 1);
        assert_eq!(spec["updateStrategy"]["rollingUpdate"]["maxUnavailable"], 0);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["hostPID"], true);
        assert_eq!(pod["priorityClassName"], "system-node-critical");
        assert_eq!(
            pod["tolerations"],
            serde_json::json!([{"operator": "Exists"}])
        );
        // No hostPath at all: the daemon joins the host's mount namespace itself.
        assert!(pod.get("volumes").is_none(), "{pod:#}");
        let containers = pod["containers"].as_array().expect("containers");
        assert_eq!(containers.len(), 1);
        let c = &containers[0];
        assert!(c.get("volumeMounts").is_none(), "{c:#}");
        assert_eq!(c["securityContext"]["privileged"], true);
        assert_eq!(
            c["args"],
            serde_json::json!([
                "--host-mount-ns",
                "--takeover-if-running",
                "--wait-after-handoff",
                "--enable-cfs",
                "/var/lib/lxcfs"
            ])
        );
        let probe = &c["readinessProbe"];
        assert_eq!(
            probe["exec"]["command"],
            serde_json::json!(["/lxcfs-rs", "--host-mount-ns", "probe", "/var/lib/lxcfs"])
        );
        assert!(probe["timeoutSeconds"].as_u64().unwrap() >= 2, "{probe}");
        assert!(probe["periodSeconds"].as_u64().is_some(), "{probe}");
        assert!(c["resources"]["requests"]["cpu"].is_string());
        assert!(c["resources"].get("limits").is_none(), "{c:#}");
        // No liveness probe in any container of any document.
        for doc in &printed.docs {
            let pod = &doc["spec"]["template"]["spec"];
            for list in ["containers", "initContainers"] {
                for c in pod[list].as_array().into_iter().flatten() {
                    assert!(c.get("livenessProbe").is_none(), "{doc:#}");
                }
            }
        }
        // The namespace admits privileged pods.
        let ns = printed.one("Namespace");
        assert_eq!(
            ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
            "privileged"
        );
    }
}

#[test]
fn flags_reach_the_documents() {
    let printed = manifests(&[
        "--namespace",
        "node-files",
        "--image",
        "registry.example/lxcfs-rs:9",
        "--mount-point",
        "/run/lxcfs",
    ]);
    for doc in &printed.docs {
        let kind = doc["kind"].as_str().unwrap();
        if !matches!(kind, "Namespace" | "MutatingWebhookConfiguration") {
            assert_eq!(doc["metadata"]["namespace"], "node-files", "{kind}");
        }
    }
    assert_eq!(printed.one("Namespace")["metadata"]["name"], "node-files");
    for kind in ["DaemonSet", "Deployment"] {
        let c = &printed.one(kind)["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "registry.example/lxcfs-rs:9", "{kind}");
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(args.contains(&"/run/lxcfs"), "{kind}: {args:?}");
    }
    for hook in printed.one("MutatingWebhookConfiguration")["webhooks"]
        .as_array()
        .unwrap()
    {
        assert_eq!(hook["clientConfig"]["service"]["namespace"], "node-files");
        let excluded = &hook["namespaceSelector"]["matchExpressions"][1];
        assert_eq!(excluded["key"], "kubernetes.io/metadata.name");
        assert_eq!(
            excluded["values"],
            serde_json::json!(["kube-system", "node-files"])
        );
    }
}

#[test]
fn bad_flags_fail_with_one_line() {
    for (args, needle) in [
        (&["--namespace", "Bad_NS"][..], "Bad_NS"),
        (&["--namespace", "a.b"], "DNS-1123"),
        (&["--image", ""], "image"),
        (&["--image", "a b"], "whitespace"),
        (&["--mount-point", "var/lib/lxcfs"], "absolute"),
        (&["--mount-point", "/var/lib:x"], "':'"),
        (&["--inject", "sidecar"], "sidecar"),
    ] {
        let mut all = vec!["kube", "manifests"];
        all.extend_from_slice(args);
        let out = run_bin(&all);
        assert_fails(&out, 2, needle);
        assert!(
            out.stdout.is_empty(),
            "{args:?} printed: {}",
            describe(&out)
        );
    }
}

/// The webhook's TLS material as one run printed it: the CA from the `caBundle`, the
/// serving certificate and key from the Secret (all PEM).
struct WebhookTls {
    ca: String,
    cert: String,
    key: String,
}

/// Decodes the webhook's TLS material, checking that both webhooks and the Secret's
/// `ca.crt` carry the same CA.
fn webhook_tls(printed: &Printed) -> WebhookTls {
    let b64 = |v: &Value| {
        let text = v.as_str().expect("a base64 string");
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .expect("base64"),
        )
        .expect("PEM is text")
    };
    let config = printed.one("MutatingWebhookConfiguration");
    let bundles: Vec<String> = config["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| b64(&h["clientConfig"]["caBundle"]))
        .collect();
    assert_eq!(bundles.len(), 2);
    assert_eq!(bundles[0], bundles[1], "both webhooks trust the same CA");
    let secret = printed.one("Secret");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(b64(&secret["data"]["ca.crt"]), bundles[0]);
    WebhookTls {
        ca: bundles[0].clone(),
        cert: b64(&secret["data"]["tls.crt"]),
        key: b64(&secret["data"]["tls.key"]),
    }
}

/// Verifies `cert_pem` as a TLS server certificate for `name` under the CA `ca_pem`, as
/// the apiserver's client does (webpki through rustls).
fn verify(ca_pem: &str, cert_pem: &str, name: &str) -> Result<(), rustls::Error> {
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use std::sync::Arc;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("the CA is PEM"))
        .expect("the CA is a certificate");
    let verifier = WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .expect("a verifier");
    let leaf = CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("tls.crt is PEM");
    verifier
        .verify_server_cert(
            &leaf,
            &[],
            &ServerName::try_from(name.to_owned()).expect("a DNS name"),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
}

#[test]
fn the_ca_bundle_verifies_the_served_certificate() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let a = webhook_tls(&manifests(&["--namespace", "lx"]));
    let b = webhook_tls(&manifests(&["--namespace", "lx"]));
    for name in [
        "lxcfs-rs-webhook.lx.svc",
        "lxcfs-rs-webhook.lx.svc.cluster.local",
    ] {
        verify(&a.ca, &a.cert, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // Not for another namespace's Service, and not under the other run's CA: every run
    // rotates the CA and the certificate.
    assert!(verify(&a.ca, &a.cert, "lxcfs-rs-webhook.other.svc").is_err());
    assert!(verify(&b.ca, &a.cert, "lxcfs-rs-webhook.lx.svc").is_err());
    assert_ne!(a.ca, b.ca);
    assert_ne!(a.cert, b.cert);
    assert_ne!(a.key, b.key);
    // tls.key is tls.crt's key (the same public key), and not the other run's.
    let certified = |cert: &str, key: &str| {
        rustls::sign::CertifiedKey::from_der(
            vec![CertificateDer::from_pem_slice(cert.as_bytes()).expect("PEM")],
            PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("tls.key is PEM"),
            &rustls::crypto::ring::default_provider(),
        )
    };
    certified(&a.cert, &a.key).expect("tls.key matches tls.crt");
    assert!(certified(&a.cert, &b.key).is_err());
}

#[test]
fn the_webhook_configuration_fails_open_on_the_server_routes() {
    let printed = manifests(&[]);
    let config = printed.one("MutatingWebhookConfiguration");
    let hooks = config["webhooks"].as_array().unwrap();
    let by_path: Vec<(&str, &str, &str)> = hooks
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap(),
                h["clientConfig"]["service"]["path"].as_str().unwrap(),
                h["namespaceSelector"]["matchExpressions"][0]["operator"]
                    .as_str()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_path,
        [
            ("pods.lxcfs-rs.io", "/mutate", "NotIn"),
            ("namespaces.lxcfs-rs.io", "/mutate-namespace", "In"),
        ]
    );
    for h in hooks {
        assert_eq!(h["failurePolicy"], "Ignore");
        assert_eq!(h["sideEffects"], "None");
        assert_eq!(h["timeoutSeconds"], 5);
        assert_eq!(h["reinvocationPolicy"], "IfNeeded");
        assert_eq!(h["admissionReviewVersions"], serde_json::json!(["v1"]));
        assert_eq!(
            h["namespaceSelector"]["matchExpressions"][0]["key"],
            "lxcfs-rs.io/inject"
        );
        assert_eq!(h["clientConfig"]["service"]["name"], "lxcfs-rs-webhook");
        assert_eq!(h["clientConfig"]["service"]["port"], 443);
    }
    // The Service leads 443 to the port the Deployment's server listens on.
    let deployment = printed.one("Deployment");
    let c = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["ports"][0]["containerPort"], 8443);
    assert!(
        c["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "0.0.0.0:8443"),
        "{c}"
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        c["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    let service = printed.one("Service");
    assert_eq!(service["spec"]["ports"][0]["port"], 443);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "https");
    assert_eq!(c["ports"][0]["name"], "https");
    assert_eq!(
        printed.one("PodDisruptionBudget")["spec"]["minAvailable"],
        1
    );
}

/// The policies' CEL cannot be evaluated here; what can be checked is that they split the
/// pods as the two webhooks do (by namespace selector, each with its annotation condition,
/// which reads only the pod: the apiserver evaluates matchConditions without the
/// namespace) and name every injected file.
#[test]
fn the_policies_inject_the_same_files_into_the_same_pods() {
    let printed = manifests(&["--inject", "policy"]);
    let policies: Vec<&Value> = printed
        .docs
        .iter()
        .filter(|d| d["kind"] == "MutatingAdmissionPolicy")
        .collect();
    let bindings: Vec<&Value> = printed
        .docs
        .iter()
        .filter(|d| d["kind"] == "MutatingAdmissionPolicyBinding")
        .collect();
    assert_eq!((policies.len(), bindings.len()), (2, 2));
    let webhooks = manifests(&[]);
    let hooks = webhooks.one("MutatingWebhookConfiguration")["webhooks"]
        .as_array()
        .unwrap()
        .clone();
    for ((policy, binding), (hook, wanted)) in policies
        .iter()
        .zip(&bindings)
        .zip(hooks.iter().zip(["== \"true\"", "!= \"false\""]))
    {
        let spec = &policy["spec"];
        assert_eq!(binding["spec"]["policyName"], policy["metadata"]["name"]);
        assert_eq!(spec["failurePolicy"], "Ignore");
        assert_eq!(spec["reinvocationPolicy"], "IfNeeded");
        // The same namespaces as the webhook of the same side.
        assert_eq!(
            spec["matchConstraints"]["namespaceSelector"], hook["namespaceSelector"],
            "{}",
            policy["metadata"]["name"]
        );
        // The opt-in condition first; then, as the webhook, no Windows pod and no pod with
        // a volume of one of our names that is not ours.
        let conditions = spec["matchConditions"].as_array().unwrap();
        let names: Vec<&str> = conditions
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names[1..],
            ["not-windows", "no-foreign-volume-of-our-names"]
        );
        let opt_in = conditions[0]["expression"].as_str().unwrap();
        assert!(opt_in.contains("\"lxcfs-rs.io/inject\""), "{opt_in}");
        assert!(opt_in.ends_with(wanted), "{opt_in}");
        for condition in conditions {
            let expression = condition["expression"].as_str().unwrap();
            assert!(!expression.contains("namespaceObject"), "{expression}");
        }
        let injected = spec["variables"][0]["expression"].as_str().unwrap();
        for target in lxcfs_rs::bind::BIND_TARGETS {
            assert!(
                injected.contains(&format!("\"/var/lib/lxcfs/{target}\"")),
                "{target}: {injected}"
            );
            assert!(injected.contains(&format!("\"/{target}\"")), "{target}");
        }
        let exprs: Vec<&str> = spec["mutations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                assert_eq!(m["patchType"], "JSONPatch");
                m["jsonPatch"]["expression"].as_str().unwrap()
            })
            .collect();
        for path in [
            "/spec/volumes",
            "/spec/containers/",
            "/spec/initContainers/",
        ] {
            assert!(exprs.iter().any(|e| e.contains(path)), "{path}");
        }
    }
}

/// The repository's `packaging/kubernetes/`.
fn packaging() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/kubernetes")
}

/// A file's text without its leading comment lines.
fn without_header(text: &str) -> &str {
    let mut rest = text;
    while rest.starts_with('#') {
        rest = rest.split_once('\n').map_or("", |(_, r)| r);
    }
    rest
}

#[test]
fn packaging_is_what_the_command_prints() {
    let none = manifests(&["--inject", "none"]);
    let policy = manifests(&["--inject", "policy"]);
    let expected = [
        ("namespace.yaml", none.text_of(|k| k == "Namespace"), "none"),
        ("daemonset.yaml", none.text_of(|k| k == "DaemonSet"), "none"),
        (
            "components/policy/policy.yaml",
            policy.text_of(|k| POLICY_KINDS.contains(&k)),
            "policy",
        ),
    ];
    let write = std::env::var_os("LXCFS_RS_WRITE_PACKAGING").is_some();
    let mut stale = Vec::new();
    for (file, text, mode) in &expected {
        assert!(!text.is_empty(), "{file}");
        let path = packaging().join(file);
        let current = fs::read_to_string(&path).unwrap_or_default();
        if without_header(&current) == text {
            continue;
        }
        if write {
            let header = format!(
                "# What `lxcfs-rs kube manifests --inject {mode}` prints (defaults): the documents of this kind.\n\
                 # Do not edit: tests/kube_manifests fails when it differs; rewrite it with\n\
                 # LXCFS_RS_WRITE_PACKAGING=1 cargo test --test kube_manifests\n"
            );
            fs::write(&path, header + text).expect("writing the packaging file");
        } else {
            stale.push(*file);
        }
    }
    assert!(
        stale.is_empty(),
        "packaging/kubernetes/{stale:?} differ from `lxcfs-rs kube manifests`; rewrite them with \
         LXCFS_RS_WRITE_PACKAGING=1 cargo test --test kube_manifests"
    );
}

/// `kubectl kustomize DIR` as documents (sorted by kind and name: kustomize orders them
/// its own way), or `None` when kubectl is missing. kubectl is no Debian package, so it is
/// optional even in CI: the check is skipped with a message instead of failing.
fn kustomize(dir: &Path) -> Option<Vec<Value>> {
    if !common::have_program("kubectl") {
        eprintln!("skipping the kustomize render: kubectl is not installed (optional)");
        return None;
    }
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("running kubectl kustomize");
    assert_succeeds(&out, &format!("kubectl kustomize {}", dir.display()));
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    Some(sorted(
        serde_norway::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).expect("YAML"))
            .collect(),
    ))
}

/// `docs` sorted by kind and name.
fn sorted(mut docs: Vec<Value>) -> Vec<Value> {
    docs.sort_by_key(|d| (d["kind"].to_string(), d["metadata"]["name"].to_string()));
    docs
}

#[test]
fn kustomize_renders_the_packaging() {
    let Some(base) = kustomize(&packaging()) else {
        return;
    };
    assert_eq!(base, sorted(manifests(&["--inject", "none"]).docs));
    // The policy component, from an overlay as the kustomization's comment shows.
    let overlay = tempfile::tempdir().expect("temp dir");
    // kustomize takes only relative paths to other kustomizations: up to / and down again.
    let up = "../".repeat(overlay.path().components().count() - 1);
    let base = format!(
        "{up}{}",
        packaging().display().to_string().trim_start_matches('/')
    );
    fs::write(
        overlay.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
             resources: [{base}]\ncomponents: [{base}/components/policy]\n"
        ),
    )
    .unwrap();
    let with_policy = kustomize(overlay.path()).expect("kubectl was there a moment ago");
    assert_eq!(with_policy, sorted(manifests(&["--inject", "policy"]).docs));
}
