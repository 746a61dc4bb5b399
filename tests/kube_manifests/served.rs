//! The printed webhook against the real server: `lxcfs-rs kube webhook` started with the
//! Deployment's own arguments (listening on 127.0.0.1 instead of 0.0.0.0) and the Secret's
//! certificate and key, reached over TLS under the Service's name with only the
//! configuration's `caBundle` as trust, on the configuration's paths, as the apiserver
//! would call it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::webhook::WebhookServer;

use super::{manifests, webhook_tls};

/// One HTTP/1.1 request over TLS to 127.0.0.1:`port`, verifying the server as `name`
/// under `ca_pem` alone; the status code and body.
fn https(
    port: u16,
    name: &str,
    ca_pem: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let server_name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let conn =
        rustls::ClientConnection::new(Arc::new(config), server_name).map_err(|e| e.to_string())?;
    let sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    sock.set_write_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    write!(
        tls,
        "{method} {path} HTTP/1.1\r\nHost: {name}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| format!("TLS or write: {e}"))?;
    let mut response = Vec::new();
    if let Err(e) = tls.read_to_end(&mut response) {
        // A server that closes without close_notify still sent the whole response.
        if e.kind() != std::io::ErrorKind::UnexpectedEof || response.is_empty() {
            return Err(format!("TLS or read: {e}"));
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP head in {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, body.to_owned()))
}

/// An AdmissionReview of a pod being created, annotated with `annotation` if any.
fn review(uid: &str, annotation: Option<&str>) -> String {
    let mut metadata = json!({ "name": "app", "namespace": "default" });
    if let Some(a) = annotation {
        metadata["annotations"] = json!({ "lxcfs-rs.io/inject": a });
    }
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": { "group": "", "version": "v1", "kind": "Pod" },
            "resource": { "group": "", "version": "v1", "resource": "pods" },
            "operation": "CREATE",
            "namespace": "default",
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": metadata,
                "spec": { "containers": [{ "name": "app", "image": "busybox" }] },
            },
        },
    })
    .to_string()
}

#[test]
fn the_printed_webhook_is_served_on_its_paths_with_its_certificate() {
    let printed = manifests(&["--namespace", "lx", "--mount-point", "/run/lxcfs"]);
    let tls = webhook_tls(&printed);
    let dir = tempfile::tempdir().expect("temp dir");
    // The Secret's files where the Deployment mounts them, here under a temp dir.
    let deployment = printed.one("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let mount = pod["containers"][0]["volumeMounts"][0]["mountPath"]
        .as_str()
        .unwrap();
    let tls_dir = dir.path().join(mount.trim_start_matches('/'));
    std::fs::create_dir_all(&tls_dir).unwrap();
    for item in pod["volumes"][0]["secret"]["items"].as_array().unwrap() {
        let text = match item["key"].as_str().unwrap() {
            "tls.crt" => &tls.cert,
            "tls.key" => &tls.key,
            other => panic!("unexpected Secret key {other}"),
        };
        std::fs::write(tls_dir.join(item["path"].as_str().unwrap()), text).unwrap();
    }
    let args: Vec<String> = pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_str().unwrap();
            if a.starts_with(mount) {
                dir.path()
                    .join(a.trim_start_matches('/'))
                    .display()
                    .to_string()
            } else if a == "0.0.0.0:8443" {
                // Loopback and a free port: the test must not listen on every address.
                "127.0.0.1:0".to_owned()
            } else {
                a.to_owned()
            }
        })
        .collect();
    assert!(
        args.iter().any(|a| a == "127.0.0.1:0"),
        "the Deployment does not listen on 0.0.0.0:8443: {args:?}"
    );
    let server = WebhookServer::start(&args);
    let port = server.port;

    let config = printed.one("MutatingWebhookConfiguration");
    for hook in config["webhooks"].as_array().unwrap() {
        let service = &hook["clientConfig"]["service"];
        let name = format!(
            "{}.{}.svc",
            service["name"].as_str().unwrap(),
            service["namespace"].as_str().unwrap()
        );
        let path = service["path"].as_str().unwrap();
        // The pods webhook sees annotated pods; the namespace webhook unannotated ones.
        let annotation = (path == "/mutate").then_some("true");
        let uid = format!("uid-{path}");
        let (status, body) = https(
            port,
            &name,
            &tls.ca,
            "POST",
            path,
            &review(&uid, annotation),
        )
        .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(status, 200, "{path}: {body}");
        let answer: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        let response = &answer["response"];
        assert_eq!(response["uid"], uid.as_str(), "{body}");
        assert_eq!(response["allowed"], true, "{body}");
        assert_eq!(response["patchType"], "JSONPatch", "{path}: {body}");
        // The patch mounts the files from the printed mount point.
        let patch = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            response["patch"].as_str().unwrap(),
        )
        .unwrap();
        let patch = String::from_utf8(patch).unwrap();
        assert!(patch.contains("/run/lxcfs/proc/meminfo"), "{patch}");
    }
    // The Deployment's readiness probe, and a name the certificate is not for.
    let probe = &pod["containers"][0]["readinessProbe"]["httpGet"];
    let (status, _) = https(
        port,
        "lxcfs-rs-webhook.lx.svc",
        &tls.ca,
        "GET",
        probe["path"].as_str().unwrap(),
        "",
    )
    .expect("readyz");
    assert_eq!(status, 200);
    let wrong = https(
        port,
        "lxcfs-rs-webhook.other.svc",
        &tls.ca,
        "GET",
        "/readyz",
        "",
    );
    assert!(wrong.is_err(), "{wrong:?}");
}
