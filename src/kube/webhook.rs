//! `lxcfs-rs kube webhook`: the mutating admission webhook, HTTPS on hyper 1 and rustls.
//!
//! hyper 1 with tokio-rustls rather than axum + axum-server: three fixed routes need no
//! router, and hyper is what axum runs on anyway, so this is the same well-kept stack
//! minus two layers. Only this command starts a tokio runtime (one thread: each review is
//! a few microseconds of JSON work); the daemon stays free of async code.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::signal::unix::{SignalKind, signal};
use tokio_rustls::TlsAcceptor;

use super::patch::{self, Options};
use crate::error_chain::Chain;

/// The largest review body accepted. The apiserver caps a whole object at about 3 MiB
/// (etcd's 1.5 MiB request limit, doubled for the review's copy of it); anything larger is
/// not from an apiserver.
pub const BODY_LIMIT: usize = 4 << 20;

/// How long a client may take for the TLS handshake and for a request's headers, so idle
/// or stuck connections do not pile up.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The route for pods opted in by their own annotation.
pub const MUTATE_PATH: &str = "/mutate";

/// The route for pods of labelled namespaces (unless the pod opts out).
pub const MUTATE_NAMESPACE_PATH: &str = "/mutate-namespace";

/// The readiness route.
pub const READYZ_PATH: &str = "/readyz";

/// What `kube webhook` serves.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The serving certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where lxcfs-rs is mounted on the nodes (absolute).
    pub mount_point: PathBuf,
    /// How often the certificate files are checked for changes.
    pub recheck_every: Duration,
}

/// Why the webhook could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The certificate file could not be read or is not PEM.
    #[error("reading the certificate {0}")]
    CertFile(PathBuf, #[source] rustls::pki_types::pem::Error),
    /// The certificate file holds no certificate.
    #[error("{0} holds no PEM certificate")]
    NoCert(PathBuf),
    /// The key file could not be read or is not PEM.
    #[error("reading the private key {0}")]
    KeyFile(PathBuf, #[source] rustls::pki_types::pem::Error),
    /// The key file holds no private key (a certificate given as the key, say).
    #[error("{0} holds no PEM private key")]
    NoKey(PathBuf),
    /// The key is of a kind rustls cannot use, or is not the certificate's.
    #[error("the private key {key} cannot serve the certificate {cert}")]
    BadKey {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// The TLS configuration could not be built.
    #[error("configuring TLS")]
    Tls(#[source] rustls::Error),
    /// The address could not be bound.
    #[error("listening on {0}")]
    Listen(SocketAddr, #[source] std::io::Error),
    /// The tokio runtime or a signal handler could not be set up.
    #[error("starting the server")]
    Runtime(#[source] std::io::Error),
}

/// The TLS provider: ring, the one rcgen uses too (no aws-lc-rs and its cmake build).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads `cert` (the chain, leaf first) and `key`, checking that the key is the leaf's.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, WebhookError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| WebhookError::CertFile(cert.to_path_buf(), e))?;
    if chain.is_empty() {
        return Err(WebhookError::NoCert(cert.to_path_buf()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => WebhookError::NoKey(key.to_path_buf()),
        e => WebhookError::KeyFile(key.to_path_buf(), e),
    })?;
    CertifiedKey::from_der(chain, key_der, &provider()).map_err(|source| WebhookError::BadKey {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        source,
    })
}

/// The serving certificate, replaced on SIGHUP and when its files change: a Kubernetes
/// Secret volume is updated in place (an atomic symlink swap) without any signal, so a
/// rotated Secret reaches the server without a restart; a bad new pair keeps the old one
/// serving.
#[derive(Debug)]
struct Reloadable {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' contents at the last load attempt, so an unchanged pair is not parsed
    /// again and a broken one is reported once, not at every check.
    seen: parking_lot::Mutex<Option<(Vec<u8>, Vec<u8>)>>,
}

impl Reloadable {
    fn new(cert: PathBuf, key: PathBuf) -> Result<Self, WebhookError> {
        let seen = Self::contents(&cert, &key);
        let loaded = load_certified_key(&cert, &key)?;
        Ok(Reloadable {
            cert,
            key,
            current: RwLock::new(Arc::new(loaded)),
            seen: parking_lot::Mutex::new(seen),
        })
    }

    fn contents(cert: &Path, key: &Path) -> Option<(Vec<u8>, Vec<u8>)> {
        Some((std::fs::read(cert).ok()?, std::fs::read(key).ok()?))
    }

    /// Loads the pair again (`why` says what asked, for the log).
    fn reload(&self, why: &str) {
        *self.seen.lock() = Self::contents(&self.cert, &self.key);
        match load_certified_key(&self.cert, &self.key) {
            Ok(fresh) => {
                *self.current.write() = Arc::new(fresh);
                log::info!("{why}: reloaded {}", self.cert.display());
            }
            Err(e) => log::error!("{why}: keeping the current certificate: {}", Chain(&e)),
        }
    }

    /// Loads the pair again if either file's contents changed since the last attempt. A
    /// swap caught halfway (new certificate, old key) fails the key check, keeps the
    /// current pair, and is loaded whole at the next check.
    fn reload_if_changed(&self) {
        let now = Self::contents(&self.cert, &self.key);
        if now.is_some() && now != *self.seen.lock() {
            self.reload("certificate files changed");
        }
    }
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

/// TLS 1.2 and 1.3 (1.2 for apiservers built without 1.3 preference), HTTP/1.1 only.
fn tls_config(certs: Arc<Reloadable>) -> Result<rustls::ServerConfig, WebhookError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(WebhookError::Tls)?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A review; `namespace_opted_in` for the path the namespace-selector webhook calls.
    Mutate {
        /// The pod's namespace opted in.
        namespace_opted_in: bool,
    },
    /// The readiness probe.
    Ready,
    /// A known path with the wrong method.
    WrongMethod,
    /// Anything else.
    NotFound,
}

/// The route of `method` on `path` (without the query: the apiserver appends `?timeout=`).
pub fn route(method: &Method, path: &str) -> Route {
    let wanted = match path {
        MUTATE_PATH => (
            Method::POST,
            Route::Mutate {
                namespace_opted_in: false,
            },
        ),
        MUTATE_NAMESPACE_PATH => (
            Method::POST,
            Route::Mutate {
                namespace_opted_in: true,
            },
        ),
        READYZ_PATH => (Method::GET, Route::Ready),
        _ => return Route::NotFound,
    };
    if *method == wanted.0 || (wanted.0 == Method::GET && *method == Method::HEAD) {
        wanted.1
    } else {
        Route::WrongMethod
    }
}

/// Whether a `Content-Type` is JSON (`application/json`, any parameters, any case).
pub fn is_json(content_type: Option<&HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A one-line plain-text error.
fn refuse(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    reply(status, "text/plain; charset=utf-8", format!("{message}\n"))
}

/// Answers one request.
async fn handle(
    request: Request<Incoming>,
    options: Arc<Options>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let namespace_opted_in = match route(request.method(), request.uri().path()) {
        Route::Ready => return Ok(reply(StatusCode::OK, "text/plain", "ok\n".into())),
        Route::NotFound => {
            return Ok(refuse(
                StatusCode::NOT_FOUND,
                "no such path: POST /mutate, POST /mutate-namespace or GET /readyz",
            ));
        }
        Route::WrongMethod => {
            return Ok(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "reviews are POSTed, /readyz is a GET",
            ));
        }
        Route::Mutate { namespace_opted_in } => namespace_opted_in,
    };
    if !is_json(request.headers().get(CONTENT_TYPE)) {
        return Ok(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "an AdmissionReview is sent as Content-Type: application/json",
        ));
    }
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = format!("the body is larger than {BODY_LIMIT} bytes");
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Ok(refuse(StatusCode::PAYLOAD_TOO_LARGE, &too_large));
    }
    let body = match Limited::new(request.into_body(), BODY_LIMIT)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Ok(refuse(StatusCode::PAYLOAD_TOO_LARGE, &too_large));
        }
        Err(e) => {
            return Ok(refuse(
                StatusCode::BAD_REQUEST,
                &format!("reading the body: {e}"),
            ));
        }
    };
    let options = Options {
        namespace_opted_in,
        ..Options::clone(&options)
    };
    match patch::review(&body, &options) {
        Ok(reviewed) => {
            log::info!("{}", reviewed.log_line());
            Ok(reply(
                StatusCode::OK,
                "application/json",
                reviewed.response.to_review_json(),
            ))
        }
        Err(e) => {
            let message = Chain(&e).to_string();
            log::warn!("refused a request: {message}");
            Ok(refuse(StatusCode::BAD_REQUEST, &message))
        }
    }
}

/// Serves one TCP connection: the TLS handshake, then HTTP/1.1 requests.
async fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    options: Arc<Options>,
) {
    // Failed handshakes are routine (port scans, probes over plain TCP): debug, not warn.
    let tls = match tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return log::debug!("TLS handshake with {peer} failed: {e}"),
        Err(_) => return log::debug!("TLS handshake with {peer} timed out"),
    };
    let service = service_fn(move |request| handle(request, options.clone()));
    if let Err(e) = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(CLIENT_TIMEOUT)
        .serve_connection(TokioIo::new(tls), service)
        .await
    {
        log::debug!("connection from {peer}: {e}");
    }
}

/// Accepts connections until SIGTERM or SIGINT; reloads the certificate on SIGHUP and
/// when its files change (checked every `recheck_every`).
async fn serve(
    listener: std::net::TcpListener,
    acceptor: TlsAcceptor,
    certs: Arc<Reloadable>,
    options: Arc<Options>,
    recheck_every: Duration,
) -> Result<(), WebhookError> {
    let mut recheck = tokio::time::interval(recheck_every);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let listener = tokio::net::TcpListener::from_std(listener).map_err(WebhookError::Runtime)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(WebhookError::Runtime)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(WebhookError::Runtime)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(WebhookError::Runtime)?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    tokio::spawn(connection(tcp, peer, acceptor.clone(), options.clone()));
                }
                Err(e) => {
                    // Out of descriptors, most likely: wait for connections to close
                    // rather than spin.
                    log::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = hangup.recv() => certs.reload("SIGHUP"),
            _ = recheck.tick() => certs.reload_if_changed(),
            // In-flight reviews are cut: the apiserver's failurePolicy Ignore admits
            // those pods unchanged, and the other replica answers the next ones.
            _ = terminate.recv() => {
                log::info!("SIGTERM: stopping");
                return Ok(());
            }
            _ = interrupt.recv() => {
                log::info!("SIGINT: stopping");
                return Ok(());
            }
        }
    }
}

/// `lxcfs-rs kube webhook`: loads the certificate, listens, and serves until SIGTERM.
/// Every start-up failure is an error before anything is served.
pub fn run(config: WebhookConfig, options: Options) -> Result<(), WebhookError> {
    let certs = Arc::new(Reloadable::new(config.cert, config.key)?);
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(certs.clone())?));
    let listener = std::net::TcpListener::bind(config.listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| WebhookError::Listen(config.listen, e))?;
    let local = listener
        .local_addr()
        .map_err(|e| WebhookError::Listen(config.listen, e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(WebhookError::Runtime)?;
    log::info!(
        "listening on {local} (mount point {})",
        options.mount_point.display()
    );
    runtime.block_on(serve(
        listener,
        acceptor,
        certs,
        Arc::new(options),
        config.recheck_every,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_ignore_the_query_and_check_the_method() {
        assert_eq!(
            route(&Method::POST, "/mutate"),
            Route::Mutate {
                namespace_opted_in: false
            }
        );
        assert_eq!(
            route(&Method::POST, "/mutate-namespace"),
            Route::Mutate {
                namespace_opted_in: true
            }
        );
        assert_eq!(route(&Method::GET, "/readyz"), Route::Ready);
        assert_eq!(route(&Method::HEAD, "/readyz"), Route::Ready);
        assert_eq!(route(&Method::GET, "/mutate"), Route::WrongMethod);
        assert_eq!(route(&Method::POST, "/readyz"), Route::WrongMethod);
        assert_eq!(route(&Method::POST, "/mutate/"), Route::NotFound);
        assert_eq!(route(&Method::POST, "/"), Route::NotFound);
    }

    #[test]
    fn json_content_types() {
        let json = |s: &'static str| is_json(Some(&HeaderValue::from_static(s)));
        assert!(json("application/json"));
        assert!(json("Application/JSON; charset=utf-8"));
        assert!(!json("text/plain"));
        assert!(!json("application/jsonx"));
        assert!(!is_json(None));
    }

    #[test]
    fn certificate_files_are_checked_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let certs = super::super::certs::generate(&["a.svc".to_string()]).unwrap();
        let other = super::super::certs::generate(&["a.svc".to_string()]).unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let (cert, key) = (write("c", &certs.cert_pem), write("k", &certs.key_pem));
        load_certified_key(&cert, &key).unwrap();
        let other_key = write("ok", &other.key_pem);
        assert!(matches!(
            load_certified_key(&cert, &other_key),
            Err(WebhookError::BadKey { .. })
        ));
        let empty = write("e", "");
        assert!(matches!(
            load_certified_key(&empty, &key),
            Err(WebhookError::NoCert(_))
        ));
        assert!(matches!(
            load_certified_key(&cert, &cert),
            Err(WebhookError::NoKey(_))
        ));
        assert!(matches!(
            load_certified_key(&cert, &dir.path().join("missing")),
            Err(WebhookError::KeyFile(..))
        ));
        assert!(matches!(
            load_certified_key(&dir.path().join("missing"), &key),
            Err(WebhookError::CertFile(..))
        ));
    }
}
