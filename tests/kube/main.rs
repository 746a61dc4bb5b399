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

use std::path::{Path, PathBuf};

pub use common::admission::{kube_patch, patch_response, patched_pod, review_response};

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
