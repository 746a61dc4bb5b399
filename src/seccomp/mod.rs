//! `sysinfo(2)` inside containers, answered from each caller's view: the seccomp agent
//! (`lxcfs-rs seccomp-agent`) and the profile that routes the call to it
//! (`lxcfs-rs seccomp-profile`).
//!
//! No file can fix programs that ask the kernel directly: busybox `free` and `uptime`,
//! glibc's `sysconf(_SC_PHYS_PAGES)` (and so a JVM without container support). A runtime
//! given a profile with `sysinfo` as `SCMP_ACT_NOTIFY` and `listenerPath` set (runc 1.1+,
//! crun, Podman, Docker 23+, containerd, CRI-O) hands us the filter's listener descriptor for
//! every container process it starts; we answer each call with the numbers the caller's
//! `proc/meminfo`, `proc/uptime` and `proc/loadavg` show (`crate::view::View::sysinfo`),
//! and on any failure let the kernel answer (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
//!
//! - [`agent`]: the socket and the threads;
//! - [`state`]: what a runtime sends;
//! - [`notify`]: the listener descriptor's ioctls;
//! - [`answer`]: one call answered;
//! - [`abi`]: which `struct sysinfo` layout a caller wants;
//! - [`profile`]: the seccomp profile.

pub mod abi;
pub mod agent;
pub mod answer;
pub mod notify;
pub mod profile;
pub mod state;

pub use agent::{AgentConfig, AgentError, run};
