//! Where each cgroup hierarchy is mounted, from `/proc/self/mountinfo`.
//!
//! Read once at start: hierarchies do not move while the daemon runs, and re-reading mountinfo
//! on every FUSE read would cost more than all the cgroup files together.

use std::path::PathBuf;

use procfs::process::MountInfo;

use super::controller::Controller;
use super::error::CgroupError;
use super::files::read_with;
use crate::host::HostPaths;

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
        let path = host.proc_file("self/mountinfo");
        let text = read_with(&path, str::to_owned).map_err(|e| CgroupError::io(&path, e))?;
        Hierarchies::from_mountinfo(host, &text)
    }

    /// Parses mountinfo text (for unit tests and `discover`). Also reads the cgroup2 root's
    /// `cgroup.controllers`, which decides which controllers a reader's `0::` path serves.
    pub fn from_mountinfo(host: &HostPaths, text: &str) -> Result<Hierarchies, CgroupError> {
        let mountinfo = host.proc_file("self/mountinfo");
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
            match read_with(&path, |t| {
                Controller::ALL.map(|c| t.split_ascii_whitespace().any(|n| n == c.v2_name()))
            }) {
                Ok(enabled) => found.v2_enabled = enabled,
                // With v1 hierarchies around the unified one usually has no controllers anyway;
                // on a pure v2 host, not knowing them would quietly serve host values.
                Err(e) if has_v1 => log::warn!("{}: {e}; using only cgroup v1", path.display()),
                Err(e) => return Err(CgroupError::io(path, e)),
            }
        } else if !has_v1 {
            return Err(CgroupError::NoHierarchies { path: mountinfo });
        }
        Ok(found)
    }
}

/// The mounts of a mountinfo text as procfs parses them, with the mount point and root
/// fields unescaped; unparsable lines are skipped.
pub(crate) fn parse_mounts(text: &str) -> impl Iterator<Item = MountInfo> + '_ {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .filter_map(|line| {
            MountInfo::from_line(line)
                .map_err(|e| log::debug!("mountinfo: skipping unparsable line {line:?}: {e}"))
                .ok()
                .map(|mut info| {
                    info.mount_point = PathBuf::from(unescape(&info.mount_point.to_string_lossy()));
                    info.root = unescape(&info.root);
                    info
                })
        })
}

/// Keeps the mount with the shortest root when a hierarchy is mounted more than once (bind
/// mounts of subtrees): it can resolve the most cgroup paths.
fn keep_broadest(slot: &mut Option<Mount>, mount: Mount) {
    match slot {
        Some(old) if old.root.len() <= mount.root.len() => {}
        _ => *slot = Some(mount),
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011` tab, `\012` newline, `\134`
/// backslash), which procfs leaves in place.
fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(octal) = bytes.get(i + 1..i + 4)
            && octal.iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let value = octal
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/a\\134b"), "/a\\b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/odd\\9"), "/odd\\9");
        assert_eq!(unescape("/end\\04"), "/end\\04");
    }

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
