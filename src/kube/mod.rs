//! Kubernetes: what is injected into pods (`targets`), shared by the admission webhook, its
//! pure core `kube patch`, and the manifests `kube manifests` prints.

pub mod certs;
pub mod manifests;
pub mod patch;
pub mod review;
pub mod targets;
pub mod webhook;

use std::io::{Read, Write};
use std::path::Path;

/// Why a `kube` command failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The mount point cannot be a hostPath.
    #[error("--mount-point")]
    MountPoint(#[from] targets::MountPointError),
    /// stdin could not be read.
    #[error("reading the AdmissionReview from stdin")]
    Stdin(#[source] std::io::Error),
    /// The review carries no uid, so no response can answer it.
    #[error(transparent)]
    Review(#[from] review::ReviewError),
    /// stdout could not be written.
    #[error("writing the AdmissionReview response")]
    Stdout(#[source] std::io::Error),
    /// The webhook could not start.
    #[error(transparent)]
    Webhook(#[from] webhook::WebhookError),
}

/// The injection options, checking that the mount point can be a hostPath.
pub fn patch_options(
    mount_point: &Path,
    namespace_opted_in: bool,
) -> Result<patch::Options, KubeError> {
    targets::check_mount_point(&mount_point.to_string_lossy())?;
    Ok(patch::Options {
        mount_point: mount_point.to_path_buf(),
        namespace_opted_in,
    })
}

/// `lxcfs-rs kube patch`: the AdmissionReview on stdin answered on stdout, what the webhook
/// would answer (the webhook's log line goes to stderr at debug level, `RUST_LOG=debug`). A
/// review without a uid is an error (exit 1); every other defect is reported inside an
/// allowing response, and repeated on stderr.
pub fn run_patch(mount_point: &Path, namespace_opted_in: bool) -> Result<(), KubeError> {
    let options = patch_options(mount_point, namespace_opted_in)?;
    let mut body = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut body)
        .map_err(KubeError::Stdin)?;
    let reviewed = patch::review(&body, &options)?;
    log::debug!("{}", reviewed.log_line());
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", reviewed.response.to_review_json())
        .and_then(|()| out.flush())
        .map_err(KubeError::Stdout)?;
    if let Some(status) = &reviewed.response.status {
        // Also said in the response; repeated on stderr for whoever runs it by hand.
        eprintln!("lxcfs-rs kube patch: {}", status.message);
    }
    Ok(())
}

/// `lxcfs-rs kube webhook`: serves reviews over HTTPS until SIGTERM.
pub fn run_webhook(config: webhook::WebhookConfig) -> Result<(), KubeError> {
    let options = patch_options(&config.mount_point, false)?;
    Ok(webhook::run(config, options)?)
}
