//! Kubernetes: what is injected into pods (`targets`), shared by the admission webhook, its
//! pure core `kube patch`, and the manifests `kube manifests` prints.

pub mod certs;
pub mod manifests;
pub mod targets;
