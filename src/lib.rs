//! lxcfs-rs: a container-aware `/proc` served over FUSE.
//!
//! Flow of a request: [`fs`] (FUSE) → [`view`] (which file, who is reading) →
//! [`cgroup`] / [`reader`] (what limits apply) → [`render`] (pure text transforms) → reply.

#![warn(missing_docs)]

pub mod bind;
pub mod cgroup;
pub mod cli;
pub mod cpulist;
pub mod daemon;
pub mod fs;
pub mod hook;
pub mod host;
pub mod loadavg;
pub mod model;
pub mod reader;
pub mod render;
pub mod show;
pub mod view;

#[cfg(test)]
mod robustness_tests;
