//! What an opted-in pod gets: one hostPath volume and one mount per file `bind-args` binds,
//! named the same way by the webhook, `kube patch` and the MutatingAdmissionPolicy, so that
//! each recognises what another already injected.

use std::path::Path;

use crate::bind::BIND_TARGETS;

/// The pod annotation that opts a pod in (`"true"`) or out (`"false"`).
pub const INJECT_ANNOTATION: &str = "lxcfs-rs.io/inject";

/// The namespace label that opts every pod of the namespace in (unless a pod opts out).
pub const NAMESPACE_LABEL: &str = "lxcfs-rs.io/inject";

/// The value of [`NAMESPACE_LABEL`] that opts a namespace in.
pub const NAMESPACE_LABEL_VALUE: &str = "enabled";

/// Prefix of every volume lxcfs-rs injects.
pub const VOLUME_PREFIX: &str = "lxcfs-rs-";

/// A mount point that cannot be used: hostPaths need an absolute path, and the daemon takes
/// it as one argument on its command line.
#[derive(Debug, thiserror::Error)]
#[error(
    "mount point {0:?} is not an absolute path other than /, free of whitespace and ':' (a hostPath and one argument of the daemon)"
)]
pub struct MountPointError(pub String);

/// `mount_point` if pods can be given hostPaths under it and the daemon's command line can
/// carry it: absolute, not `/`, no whitespace, control character or `:` (which splits
/// hostPath-style `SRC:DST` specs).
pub fn check_mount_point(mount_point: &str) -> Result<String, MountPointError> {
    let bad = !mount_point.starts_with('/')
        || mount_point.trim_end_matches('/').is_empty()
        || mount_point
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ':');
    if bad {
        Err(MountPointError(mount_point.to_owned()))
    } else {
        Ok(mount_point.to_owned())
    }
}

/// One injected hostPath volume and where containers mount it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    /// The volume's name: [`VOLUME_PREFIX`] and the target with `/` as `-`
    /// (`lxcfs-rs-proc-meminfo`), a valid DNS label.
    pub volume: String,
    /// The file or directory on the host (under the mount point).
    pub host_path: String,
    /// Where containers see it (`/proc/meminfo`).
    pub mount_path: String,
    /// The hostPath `type`: `File` for files and `Directory` for the CPU directory, so the
    /// kubelet never creates either: on a node where nothing serves the mount point the
    /// check fails and the pod waits in ContainerCreating, saying why, instead of running
    /// on host values or on an empty directory created in the file's place.
    pub host_path_type: &'static str,
}

/// Everything injected for an lxcfs-rs mounted at `mountpoint`, in `BIND_TARGETS` order.
pub fn injected(mountpoint: &Path) -> Vec<Injected> {
    BIND_TARGETS
        .iter()
        .map(|target| Injected {
            volume: format!("{VOLUME_PREFIX}{}", target.replace('/', "-")),
            host_path: mountpoint.join(target).to_string_lossy().into_owned(),
            mount_path: format!("/{target}"),
            host_path_type: if target.starts_with("proc/") {
                "File"
            } else {
                "Directory"
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels_and_types_never_create() {
        let all = injected(Path::new("/var/lib/lxcfs"));
        assert_eq!(all.len(), BIND_TARGETS.len());
        for i in &all {
            assert!(i.volume.len() <= 63, "{}", i.volume);
            assert!(
                i.volume
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{}",
                i.volume
            );
            assert!(matches!(i.host_path_type, "File" | "Directory"));
        }
        let meminfo = all
            .iter()
            .find(|i| i.mount_path == "/proc/meminfo")
            .unwrap();
        assert_eq!(meminfo.volume, "lxcfs-rs-proc-meminfo");
        assert_eq!(meminfo.host_path, "/var/lib/lxcfs/proc/meminfo");
        assert_eq!(meminfo.host_path_type, "File");
        let cpu = all
            .iter()
            .find(|i| i.mount_path == "/sys/devices/system/cpu")
            .unwrap();
        assert_eq!(cpu.volume, "lxcfs-rs-sys-devices-system-cpu");
        assert_eq!(cpu.host_path_type, "Directory");
        assert!(
            !all.iter()
                .any(|i| i.mount_path.starts_with("/proc/pressure"))
        );
    }
}
