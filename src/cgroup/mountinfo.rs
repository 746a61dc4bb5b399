//! Where each cgroup hierarchy is mounted, from `/proc/self/mountinfo`.
//!
//! Read once at start: hierarchies do not move while the daemon runs, and re-reading mountinfo
//! on every FUSE read would cost more than all the cgroup files together.

use std::path::PathBuf;

use super::controller::Controller;
use super::error::CgroupError;
use crate::host::HostPaths;
use crate::kfile::{self, FileError};
use crate::mounts::parse_mounts;

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// The mount point, already placed under `HostPaths::root`.
    pub(crate) dir: PathBuf,
    /// The mountinfo `root` field: the cgroup path the mount point shows. `/` normally; a
    /// subtree when a container's cgroup was bind-mounted.
    pub(crate) root: String,
}

/// Where each cgroup hierarchy is mounted, from `<host.proc>/self/mountinfo` (fstype `cgroup`
/// with its controllers from the super options, e.g. `rw,cpu,cpuacct` co-mounted,
/// `name=systemd`; fstype `cgroup2` = unified).
///
/// Mount points are resolved with `host.host_path()`; the mountinfo `root` field (4th) is
/// honoured: a mount whose root is `/foo` serves cgroup paths under `/foo`. Only the v1
/// controllers lxcfs-rs reads are kept: memory, cpu, cpuacct, cpuset, blkio, pids.
#[derive(Debug, Clone)]
pub struct Hierarchies {
    /// The v1 hierarchy of each controller, by `Controller::index`.
    pub(crate) v1: [Option<Mount>; Controller::COUNT],
    /// The cgroup2 mount.
    pub(crate) v2: Option<Mount>,
    /// Which controllers the cgroup2 mount has (its root's `cgroup.controllers`), by index.
    pub(crate) v2_enabled: [bool; Controller::COUNT],
}

impl Hierarchies {
    /// Reads `<host.proc>/self/mountinfo` and finds the hierarchies.
    pub fn discover(host: &HostPaths) -> Result<Hierarchies, CgroupError> {
        let text = kfile::read_text(&host.mountinfo())?;
        Hierarchies::from_mountinfo(host, &text)
    }

    /// Parses mountinfo text (for unit tests and `discover`). Also reads the cgroup2 root's
    /// `cgroup.controllers`, which decides which controllers a reader's `0::` path serves.
    pub fn from_mountinfo(host: &HostPaths, text: &str) -> Result<Hierarchies, CgroupError> {
        let mountinfo = host.mountinfo();
        let mut found = Hierarchies {
            v1: Default::default(),
            v2: None,
            v2_enabled: [false; Controller::COUNT],
        };
        // procfs's parser: cheap enough here, since this runs once at start.
        for info in parse_mounts(text) {
            let mount = || Mount {
                dir: host.host_path(&info.mount_point),
                root: info.root.clone(),
            };
            match info.fs_type.as_str() {
                "cgroup2" => keep_broadest(&mut found.v2, mount()),
                "cgroup" => {
                    for c in Controller::ALL {
                        if info.super_options.contains_key(c.v1_name()) {
                            keep_broadest(&mut found.v1[c.index()], mount());
                        }
                    }
                }
                _ => {}
            }
        }
        let has_v1 = found.v1.iter().any(Option::is_some);
        if let Some(v2) = &found.v2 {
            let path = v2.dir.join("cgroup.controllers");
            match kfile::read_with(&path, |t| {
                Controller::ALL.map(|c| t.split_ascii_whitespace().any(|n| n == c.v2_name()))
            }) {
                Ok(enabled) => found.v2_enabled = enabled,
                // With v1 hierarchies around the unified one usually has no controllers anyway;
                // on a pure v2 host, not knowing them would quietly serve host values.
                Err(e) if has_v1 => log::warn!("{}: {e}; using only cgroup v1", path.display()),
                Err(e) => return Err(FileError::io(path, e).into()),
            }
        } else if !has_v1 {
            return Err(CgroupError::NoHierarchies { path: mountinfo });
        }
        Ok(found)
    }
}

/// Keeps the mount with the shortest root when a hierarchy is mounted more than once (bind
/// mounts of subtrees): it can resolve the most cgroup paths.
fn keep_broadest(slot: &mut Option<Mount>, mount: Mount) {
    match slot {
        Some(old) if old.root.len() <= mount.root.len() => {}
        _ => *slot = Some(mount),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadest_mount_wins() {
        let m = |root: &str| Mount {
            dir: PathBuf::from("/x"),
            root: root.into(),
        };
        let mut slot = None;
        keep_broadest(&mut slot, m("/docker/abc"));
        keep_broadest(&mut slot, m("/"));
        keep_broadest(&mut slot, m("/other"));
        assert_eq!(slot.unwrap().root, "/");
    }
}
