//! lxcfs-rs: a container-aware `/proc` served over FUSE.
//!
//! Flow of a request, each layer using only those below it: [`fuse`] (the kernel protocol on
//! `/dev/fuse`) → [`fs`] (node ids, open files; knows nothing of cgroups) → [`view`] (the tree) → [`files`] (one recipe per served file: who is reading,
//! what limits apply) → [`cgroup`] / [`reader`] / [`load_tracker`] (the reader's cgroups,
//! pid namespace and load) → [`render`] (pure text transforms over [`model`] values) → bytes.
//! At the bottom: [`host`] (every host path), [`kfile`] (every kernel-file read), [`mounts`]
//! (mount-table queries), [`fallback`] (why a reader got host values), [`error_chain`].
//! The commands sit on top: [`cli`], [`daemon`], [`show`], [`bind`], [`hook`], [`seccomp`]
//! (the `sysinfo(2)` agent and its profile), [`kube`] (Kubernetes injection and manifests).
//!
//! What each file shows: `docs/semantics.md`; how the code is laid out and how to add a
//! served file: `docs/contributing.md`.

#![warn(missing_docs)]

pub mod bind;
pub mod cgroup;
pub mod cli;
pub mod cpulist;
pub mod daemon;
pub mod error_chain;
pub mod failpoint;
pub mod fallback;
pub mod files;
pub mod fs;
pub mod fuse;
pub mod hook;
pub mod host;
pub mod kfile;
pub mod kube;
pub mod load_tracker;
pub mod model;
pub mod mount_ns;
pub mod mounts;
pub mod probe;
pub mod reader;
pub mod reattach;
pub mod render;
pub mod seccomp;
pub mod show;
pub mod stats;
pub mod version;
pub mod view;

#[cfg(test)]
mod robustness_tests;
#[cfg(test)]
mod testutil;
