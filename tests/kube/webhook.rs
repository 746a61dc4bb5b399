//! `lxcfs-rs kube webhook` over real HTTPS: the binary on 127.0.0.1 with a certificate from
//! `kube::certs::generate`, reached by curl under the Service's DNS name.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use lxcfs_rs::kube::certs::{self, Certs};

use crate::common::webhook::WebhookServer;
use serde_json::Value;

use super::{fixture, fixture_bytes, kube_patch, review_response};

/// The name the apiserver connects to (`<service>.<namespace>.svc`).
const HOST: &str = "lxcfs-rs-webhook.lxcfs-rs.svc";

/// The certificate files of one generation.
struct CertFiles {
    dir: tempfile::TempDir,
    certs: Certs,
}

impl CertFiles {
    fn new() -> Self {
        let certs = certs::generate(&[HOST.to_string()]).expect("generating certificates");
        let files = CertFiles {
            dir: tempfile::tempdir().unwrap(),
            certs,
        };
        files.write_into(files.dir.path());
        files
    }

    /// Writes the three files, each replaced atomically (as the kubelet updates a Secret
    /// volume), so a server checking them never reads one half-written.
    fn write_into(&self, dir: &Path) {
        write_atomically(&dir.join("ca.pem"), &self.certs.ca_pem);
        write_atomically(&dir.join("tls.crt"), &self.certs.cert_pem);
        write_atomically(&dir.join("tls.key"), &self.certs.key_pem);
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn write_atomically(path: &Path, text: &str) {
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// A running `kube webhook` on 127.0.0.1, killed (by its pid) and reaped on drop.
struct Webhook(WebhookServer);

impl std::ops::Deref for Webhook {
    type Target = WebhookServer;
    fn deref(&self) -> &WebhookServer {
        &self.0
    }
}

impl Webhook {
    /// Starts the webhook on an ephemeral port of 127.0.0.1.
    fn start(files: &CertFiles) -> Webhook {
        Webhook::start_with(files, &[])
    }

    /// [`Webhook::start`] with more flags.
    fn start_with(files: &CertFiles, args: &[&str]) -> Webhook {
        let mut argv: Vec<std::ffi::OsString> = ["kube", "webhook", "--listen", "127.0.0.1:0"]
            .iter()
            .map(Into::into)
            .collect();
        argv.push("--cert".into());
        argv.push(files.path("tls.crt").into());
        argv.push("--key".into());
        argv.push(files.path("tls.key").into());
        argv.extend(args.iter().map(Into::into));
        Webhook(WebhookServer::start(&argv))
    }

    /// `curl` to `path` under [`HOST`], resolved to 127.0.0.1, with `args` before the URL.
    fn curl(&self, path: &str, args: &[&str]) -> Curl {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", "--write-out", "\n%{http_code}"])
            .args(["--resolve", &format!("{HOST}:{}:127.0.0.1", self.port)])
            .args(args)
            .arg(format!("https://{HOST}:{}{path}", self.port))
            .output()
            .expect("running curl");
        Curl::from(out)
    }

    /// POSTs fixture `name` as JSON to `path`, trusting `ca`.
    fn post(&self, path: &str, ca: &Path, name: &str) -> Curl {
        let data = format!("@{}", fixture(name).display());
        self.curl(
            path,
            &[
                "--cacert",
                ca.to_str().unwrap(),
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &data,
            ],
        )
    }
}

/// What curl got.
#[derive(Debug)]
struct Curl {
    /// curl's exit code (0: a response arrived, whatever its status).
    code: Option<i32>,
    /// The HTTP status (0 when there was no response).
    status: u16,
    body: String,
    stderr: String,
}

impl From<Output> for Curl {
    fn from(out: Output) -> Self {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
        Curl {
            code: out.status.code(),
            status: status.trim().parse().unwrap_or(0),
            body: body.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The response `kube patch ARGS` gives for fixture `name`.
fn patch_says(name: &str, args: &[&str]) -> Value {
    let out = kube_patch(&fixture_bytes(name), args);
    assert!(out.status.success(), "{out:?}");
    review_response(&out.stdout)
}

fn uid_of(name: &str) -> String {
    let review: Value = serde_json::from_slice(&fixture_bytes(name)).unwrap();
    review["request"]["uid"].as_str().unwrap().to_string()
}

#[test]
fn mutate_answers_what_kube_patch_answers() {
    require!(program "curl", "the webhook tests speak HTTPS through curl");
    let files = CertFiles::new();
    let webhook = Webhook::start(&files);
    let ca = files.path("ca.pem");
    for name in [
        "pod-no-volumes.json",
        "pod-with-volumes.json",
        "pod-init-sidecar.json",
        "pod-future-fields.json",
        "pod-already-injected.json",
        "pod-not-annotated.json",
        "pod-volume-conflict.json",
        "review-deployment.json",
        "review-object-not-a-pod.json",
    ] {
        let got = webhook.post("/mutate", &ca, name);
        assert_eq!((got.code, got.status), (Some(0), 200), "{name}: {got:?}");
        assert_eq!(
            review_response(got.body.as_bytes()),
            patch_says(name, &[]),
            "{name}"
        );
    }
    let logged = webhook.logged(&uid_of("pod-no-volumes.json"));
    assert_eq!(logged.len(), 1, "one line per review: {logged:?}");
    assert!(
        logged[0].contains("pod=default/no-volumes") && logged[0].contains("injected=9"),
        "{logged:?}"
    );
    let sidecar = webhook.logged(&uid_of("pod-init-sidecar.json"));
    assert!(
        sidecar[0].contains("pod=default/init-sidecar-*"),
        "{sidecar:?}"
    );
    // The apiserver appends ?timeout=...; the path alone routes.
    let got = webhook.post("/mutate?timeout=5s", &ca, "pod-no-volumes.json");
    assert_eq!(got.status, 200, "{got:?}");
}

#[test]
fn mutate_namespace_injects_unannotated_pods_unless_they_opt_out() {
    require!(program "curl", "the webhook tests speak HTTPS through curl");
    let files = CertFiles::new();
    let webhook = Webhook::start(&files);
    let ca = files.path("ca.pem");
    let plain = "pod-not-annotated.json";
    let on_mutate = review_response(webhook.post("/mutate", &ca, plain).body.as_bytes());
    assert!(on_mutate.get("patch").is_none(), "{on_mutate}");
    let got = webhook.post("/mutate-namespace", &ca, plain);
    assert_eq!(got.status, 200, "{got:?}");
    let response = review_response(got.body.as_bytes());
    assert_eq!(response["patchType"], "JSONPatch", "{response}");
    assert_eq!(response, patch_says(plain, &["--namespace-opted-in"]));
    let opt_out = review_response(
        webhook
            .post("/mutate-namespace", &ca, "pod-opt-out.json")
            .body
            .as_bytes(),
    );
    assert!(opt_out.get("patch").is_none(), "{opt_out}");
    assert_eq!(opt_out["allowed"], true);
}

#[test]
fn readiness_content_types_methods_and_malformed_bodies() {
    require!(program "curl", "the webhook tests speak HTTPS through curl");
    let files = CertFiles::new();
    let webhook = Webhook::start(&files);
    let ca = files.path("ca.pem");
    let ca = ca.to_str().unwrap();
    let ready = webhook.curl("/readyz", &["--cacert", ca]);
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (200, "ok\n"),
        "{ready:?}"
    );

    let data = format!("@{}", fixture("pod-no-volumes.json").display());
    for content_type in [
        "Content-Type: text/plain",
        "Content-Type: application/x-www-form-urlencoded",
    ] {
        let got = webhook.curl(
            "/mutate",
            &["--cacert", ca, "-H", content_type, "--data-binary", &data],
        );
        assert_eq!(got.status, 415, "{content_type}: {got:?}");
        assert_eq!(got.body.lines().count(), 1, "{got:?}");
    }
    let got = webhook.curl("/mutate", &["--cacert", ca]);
    assert_eq!(got.status, 405, "GET /mutate: {got:?}");
    let got = webhook.curl("/nothing", &["--cacert", ca]);
    assert_eq!(got.status, 404, "{got:?}");

    for (name, what) in [
        ("review-not-json.json", "not JSON"),
        ("review-no-request.json", "no request.uid"),
    ] {
        let got = webhook.post("/mutate", Path::new(ca), name);
        assert_eq!(got.status, 400, "{name}: {got:?}");
        assert_eq!(got.body.lines().count(), 1, "{got:?}");
        assert!(got.body.contains(what), "{name}: {got:?}");
    }

    // 5 MiB of JSON: refused before any of it is parsed.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.json");
    std::fs::write(&big, format!("[\"{}\"]", "x".repeat(5 << 20))).unwrap();
    let data = format!("@{}", big.display());
    let got = webhook.curl(
        "/mutate",
        &[
            "--cacert",
            ca,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &data,
        ],
    );
    assert_eq!(got.status, 413, "{:?}", got.stderr);
    // Still serving after all that.
    assert_eq!(webhook.curl("/readyz", &["--cacert", ca]).status, 200);
}

#[test]
fn clients_that_do_not_trust_the_ca_fail_the_handshake() {
    require!(program "curl", "the webhook tests speak HTTPS through curl");
    let files = CertFiles::new();
    let webhook = Webhook::start(&files);
    let other = CertFiles::new();
    let untrusted = [
        webhook.curl("/readyz", &[]),
        webhook.curl(
            "/readyz",
            &["--cacert", other.path("ca.pem").to_str().unwrap()],
        ),
    ];
    for got in &untrusted {
        assert_eq!(got.status, 0, "{got:?}");
        // 60: the peer's certificate cannot be authenticated with the known CAs.
        assert_eq!(got.code, Some(60), "{got:?}");
    }
    // The right CA, but a name the certificate does not carry.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(files.path("ca.pem"))
        .args([
            "--resolve",
            &format!("other.lxcfs-rs.svc:{}:127.0.0.1", webhook.port),
        ])
        .arg(format!(
            "https://other.lxcfs-rs.svc:{}/readyz",
            webhook.port
        ))
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    // And the trusted client gets through, so the failures above are about trust.
    let ok = webhook.curl(
        "/readyz",
        &["--cacert", files.path("ca.pem").to_str().unwrap()],
    );
    assert_eq!(ok.status, 200, "{ok:?}");
    for tls in ["--tlsv1.2", "--tlsv1.3"] {
        let got = webhook.curl(
            "/readyz",
            &[
                tls,
                "--tls-max",
                &tls[6..],
                "--cacert",
                files.path("ca.pem").to_str().unwrap(),
            ],
        );
        assert_eq!(got.status, 200, "{tls}: {got:?}");
    }
}

/// The CA a client trusts: the given file's, copied, so later rewrites do not change it.
fn keep_ca(files: &CertFiles, name: &str) -> PathBuf {
    let kept = files.dir.path().join(name);
    std::fs::copy(files.path("ca.pem"), &kept).unwrap();
    kept
}

#[test]
fn sighup_reloads_the_certificate() {
    require!(program "curl", "the webhook tests speak HTTPS through curl");
    let files = CertFiles::new();
    // No file check during the test: only the signal reloads.
    let webhook = Webhook::start_with(&files, &["--recheck-every", "3600"]);
    let old_ca = keep_ca(&files, "old-ca.pem");
    CertFiles::new().write_into(files.dir.path());
    let new_ca = keep_ca(&files, "new-ca.pem");
    // Not before the signal.
    let before = webhook.curl("/readyz", &["--cacert", new_ca.to_str().unwrap()]);
    assert_eq!(before.code, Some(60), "{before:?}");
    let pid = nix::unistd::Pid::from_raw(webhook.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    assert_eq!(webhook.logged("SIGHUP: reloaded").len(), 1);
    let new = webhook.curl("/readyz", &["--cacert", new_ca.to_str().unwrap()]);
    assert_eq!(new.status, 200, "{new:?}");
    let old = webhook.curl("/readyz", &["--cacert", old_ca.to_str().unwrap()]);
    assert_eq!(old.code, Some(60), "{old:?}");
    // A broken pair on SIGHUP keeps the current one serving.
    std::fs::write(files.path("tls.key"), "not a key").unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    assert_eq!(
        webhook
            .logged("SIGHUP: keeping the current certificate")
            .len(),
        1
    );
    let still = webhook.curl("/readyz", &["--cacert", new_ca.to_str().unwrap()]);
    assert_eq!(still.status, 200, "{still:?}");
}

#[test]
fn changed_certificate_files_are_picked_up_without_a_signal() {
    require!(program "curl", "the webhook tests speak HTTPS through curl");
    let files = CertFiles::new();
    let webhook = Webhook::start_with(&files, &["--recheck-every", "1"]);
    // A half-done rotation (new key, old certificate): reported once, old pair serving.
    let rotated = CertFiles::new();
    write_atomically(&files.path("tls.key"), &rotated.certs.key_pem);
    let broken = webhook.logged("keeping the current certificate");
    assert_eq!(broken.len(), 1, "{broken:?}");
    let old = webhook.curl(
        "/readyz",
        &["--cacert", files.path("ca.pem").to_str().unwrap()],
    );
    assert_eq!(old.status, 200, "{old:?}");
    // The rotation completed: the new CA is trusted within a few checks.
    rotated.write_into(files.dir.path());
    assert_eq!(
        webhook.logged("certificate files changed: reloaded").len(),
        1
    );
    let new = webhook.curl(
        "/readyz",
        &["--cacert", files.path("ca.pem").to_str().unwrap()],
    );
    assert_eq!(new.status, 200, "{new:?}");
    std::thread::sleep(Duration::from_millis(2500));
    let logged = webhook.logged("certificate files changed");
    assert_eq!(
        logged.len(),
        2,
        "unchanged files are not reloaded again: {logged:?}"
    );
}

/// `kube webhook ARGS` exits 1 with one line containing `what`, without serving.
fn assert_start_fails(args: &[&str], what: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_lxcfs-rs"))
        .args(["kube", "webhook"])
        .args(args)
        // Never the default 0.0.0.0:8443, should a start that must fail get that far.
        .args(if args.contains(&"--listen") {
            &[][..]
        } else {
            &["--listen", "127.0.0.1:0"][..]
        })
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with("lxcfs-rs: ") && stderr.contains(what),
        "{what}: {stderr}"
    );
}

#[test]
fn bad_certificate_files_stop_the_start_with_one_line() {
    let files = CertFiles::new();
    let other = CertFiles::new();
    let cert = files.path("tls.crt");
    let key = files.path("tls.key");
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = listener.local_addr().unwrap().to_string();
    assert_start_fails(
        &["--cert", cert, "--key", key, "--listen", &taken],
        &format!("listening on {taken}"),
    );
    assert_start_fails(
        &["--cert", "/nonexistent/tls.crt", "--key", key],
        "/nonexistent/tls.crt",
    );
    assert_start_fails(
        &["--cert", cert, "--key", "/nonexistent/tls.key"],
        "/nonexistent/tls.key",
    );
    assert_start_fails(
        &[
            "--cert",
            cert,
            "--key",
            other.path("tls.key").to_str().unwrap(),
        ],
        "cannot serve the certificate",
    );
    assert_start_fails(&["--cert", key, "--key", key], "holds no PEM certificate");
    assert_start_fails(&["--cert", cert, "--key", cert], "holds no PEM private key");
    assert_start_fails(
        &["--cert", cert, "--key", key, "--mount-point", "relative"],
        "not an absolute path",
    );
}
