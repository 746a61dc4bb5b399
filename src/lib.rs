//! lxcfs-rs: a container-aware `/proc` served over FUSE.
//!
//! Flow of a request: [`fs`] (FUSE) → [`view`] (who is reading, which file) →
//! [`cgroup`] / [`reader`] (what limits apply) → [`render`] (pure text transforms) → reply.

pub mod cgroup;
pub mod cpulist;
pub mod host;
pub mod model;
pub mod reader;
pub mod render;
