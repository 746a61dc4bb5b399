//! Which files of the mount a container binds over its own, and how each tool spells it:
//! `bind-args` prints them as runtime flags, the OCI and LXC hooks mount them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::ValueEnum;

/// What a container binds, relative to both the mount and the container's root.
///
/// runc (under Docker and Podman) refuses binds inside `/proc` other than its list of
/// lxcfs files (cpuinfo, diskstats, meminfo, stat, swaps, uptime, loadavg, slabinfo), so
/// `/proc/pressure/*` cannot be bound there. The CPU directory is bound whole, not only
/// `online`: glibc's `_SC_NPROCESSORS_CONF` and htop count its `cpuN` entries.
pub const BIND_TARGETS: &[&str] = &[
    "proc/cpuinfo",
    "proc/diskstats",
    "proc/loadavg",
    "proc/meminfo",
    "proc/slabinfo",
    "proc/stat",
    "proc/swaps",
    "proc/uptime",
    "sys/devices/system/cpu",
];

/// The tool the flags are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Runtime {
    /// `docker run` / `docker create`: `-v SRC:DST:rw` flags.
    Docker,
    /// `podman run`: the same `-v SRC:DST:rw` flags as Docker.
    Podman,
    /// LXC container config: one `lxc.mount.entry` line per file.
    Lxc,
}

/// Why no flags can be printed.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Nothing serves the files, so a runtime would bind empty paths (Docker even creates
    /// them as directories on the host).
    #[error(
        "no lxcfs filesystem is mounted at {0}; start lxcfs-rs first (systemctl start lxcfs-rs, or lxcfs-rs {0})"
    )]
    NotMounted(PathBuf),
    /// `-v` and `lxc.mount.entry` split on these characters.
    #[error("mount point {0:?} contains a space or ':', which -v and lxc.mount.entry cannot carry")]
    UnsafePath(PathBuf),
    /// The mount point could not be resolved.
    #[error("cannot resolve mount point {path}")]
    Io {
        /// The mount point.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The bind mounts a container gets from the mount at `mountpoint`: each target whose source
/// the mount serves (`exists` tells), as (source on the host, destination in the container).
pub fn bind_pairs(mountpoint: &Path, exists: impl Fn(&Path) -> bool) -> Vec<(PathBuf, String)> {
    BIND_TARGETS
        .iter()
        .map(|t| (mountpoint.join(t), format!("/{t}")))
        .filter(|(src, _)| exists(src))
        .collect()
}

/// The flags or config lines for `runtime`, one line for LXC entries and one line of
/// space-separated flags otherwise, so `docker run $(lxcfs-rs bind-args) IMAGE` works.
pub fn format_binds(runtime: Runtime, pairs: &[(PathBuf, String)]) -> String {
    let mut out = String::new();
    for (src, dst) in pairs {
        match runtime {
            Runtime::Docker | Runtime::Podman => {
                if !out.is_empty() {
                    out.push(' ');
                }
                let _ = write!(out, "-v {}:{dst}:rw", src.display());
            }
            Runtime::Lxc => {
                // LXC wants the destination relative to the rootfs; `optional` keeps a
                // container starting when one file is missing, as lxcfs's own hook does.
                let kind = if dst.starts_with("/proc/") {
                    "file"
                } else {
                    "dir"
                };
                let _ = writeln!(
                    out,
                    "lxc.mount.entry = {} {} none bind,optional,create={kind} 0 0",
                    src.display(),
                    dst.trim_start_matches('/')
                );
            }
        }
    }
    if !matches!(runtime, Runtime::Lxc) {
        out.push('\n');
    }
    out
}

/// `lxcfs-rs bind-args`: checks that an lxcfs filesystem is mounted at `mountpoint`, then
/// returns the text to print.
pub fn bind_args(mountpoint: &Path, runtime: Runtime) -> Result<String, BindError> {
    let text = mountpoint.to_string_lossy();
    if text.contains(':') || text.chars().any(char::is_whitespace) {
        return Err(BindError::UnsafePath(mountpoint.to_path_buf()));
    }
    let canonical = mountpoint
        .canonicalize()
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => BindError::NotMounted(mountpoint.to_path_buf()),
            _ => BindError::Io {
                path: mountpoint.to_path_buf(),
                source,
            },
        })?;
    if !crate::mounts::is_lxcfs_mountpoint(&canonical) {
        return Err(BindError::NotMounted(mountpoint.to_path_buf()));
    }
    // Sources name the path as given, not the canonical one: that is what the user
    // configured (and what a later `docker inspect` will show).
    Ok(format_binds(
        runtime,
        &bind_pairs(mountpoint, |p| p.exists()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_is_served() {
        for t in BIND_TARGETS {
            assert!(
                crate::files::lookup(t).is_some(),
                "{t} is bound but not in the tree"
            );
        }
    }

    #[test]
    fn docker_flags_are_one_line() {
        let pairs = bind_pairs(Path::new("/var/lib/lxcfs"), |p| !p.ends_with("slabinfo"));
        let out = format_binds(Runtime::Docker, &pairs);
        assert_eq!(out.lines().count(), 1);
        assert!(out.starts_with("-v /var/lib/lxcfs/proc/cpuinfo:/proc/cpuinfo:rw -v "));
        assert!(
            out.contains(" -v /var/lib/lxcfs/sys/devices/system/cpu:/sys/devices/system/cpu:rw")
        );
        assert!(
            !out.contains("slabinfo"),
            "a file the mount lacks is left out"
        );
        assert_eq!(out.matches("-v ").count(), BIND_TARGETS.len() - 1);
        assert_eq!(out, format_binds(Runtime::Podman, &pairs));
    }

    #[test]
    fn lxc_entries_are_relative() {
        let pairs = bind_pairs(Path::new("/l"), |_| true);
        let out = format_binds(Runtime::Lxc, &pairs);
        assert_eq!(out.lines().count(), BIND_TARGETS.len());
        assert!(out.contains(
            "lxc.mount.entry = /l/proc/meminfo proc/meminfo none bind,optional,create=file 0 0\n"
        ));
        assert!(out.contains(
            "lxc.mount.entry = /l/sys/devices/system/cpu sys/devices/system/cpu none bind,optional,create=dir 0 0\n"
        ));
    }

    #[test]
    fn unmounted_and_unsafe_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = bind_args(dir.path(), Runtime::Docker).unwrap_err();
        assert!(matches!(e, BindError::NotMounted(_)), "{e}");
        let e = bind_args(&dir.path().join("missing"), Runtime::Docker).unwrap_err();
        assert!(matches!(e, BindError::NotMounted(_)), "{e}");
        let e = bind_args(Path::new("/var/lib/lx cfs"), Runtime::Docker).unwrap_err();
        assert!(matches!(e, BindError::UnsafePath(_)), "{e}");
        let e = bind_args(Path::new("/a:b"), Runtime::Docker).unwrap_err();
        assert!(matches!(e, BindError::UnsafePath(_)), "{e}");
    }
}
