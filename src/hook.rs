//! Container hooks that bind the mount's files into a container as it starts: an OCI
//! `createContainer` hook (runc, Podman's hooks.d, CRI-O) and an LXC mount hook.
//!
//! Both run in the container's mount namespace after its root filesystem, `/proc` and
//! `/sys` are mounted and before it pivots into them, so host paths and the container's
//! root are both visible and a plain bind mount does the job.

use std::io::Read;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use serde_json::Value;

use crate::bind::bind_pairs;

/// Why a hook could not bind the files.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The OCI state could not be read from stdin.
    #[error("OCI state on stdin: cannot read it")]
    StateRead(#[source] std::io::Error),
    /// The runtime handed us something that is not an OCI state.
    #[error("OCI state on stdin: not JSON")]
    StateJson(#[source] serde_json::Error),
    /// The state names no bundle.
    #[error("OCI state on stdin: no \"bundle\" field")]
    NoBundle,
    /// The bundle's config.json could not be read.
    #[error("cannot read {path}")]
    ConfigRead {
        /// The config file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The bundle's config.json is not JSON.
    #[error("{path}: not JSON")]
    ConfigJson {
        /// The config file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// The bundle's config.json names no root filesystem.
    #[error("{path}: no root.path")]
    NoRootPath {
        /// The config file.
        path: PathBuf,
    },
    /// LXC did not say where the root filesystem is.
    #[error("LXC_ROOTFS_MOUNT is not set; run this as an lxc.hook.mount")]
    NoLxcRootfs,
    /// A bind mount failed.
    #[error("bind {src} on {dst}")]
    Mount {
        /// The file of the mount.
        src: PathBuf,
        /// Where it was to go.
        dst: PathBuf,
        /// The error.
        source: nix::Error,
    },
}

/// The container's root filesystem from an OCI state (on the hook's stdin) and the
/// bundle's `config.json` (`root.path`, relative to the bundle unless absolute).
pub fn oci_rootfs(state: &str) -> Result<PathBuf, HookError> {
    let state: Value = serde_json::from_str(state).map_err(HookError::StateJson)?;
    let bundle = state
        .get("bundle")
        .and_then(Value::as_str)
        .filter(|b| !b.is_empty())
        .ok_or(HookError::NoBundle)?;
    let bundle = Path::new(bundle);
    let path = bundle.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(source) => return Err(HookError::ConfigRead { path, source }),
    };
    let config: Value = match serde_json::from_str(&text) {
        Ok(config) => config,
        Err(source) => return Err(HookError::ConfigJson { path, source }),
    };
    let root = config
        .pointer("/root/path")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .ok_or(HookError::NoRootPath { path: path.clone() })?;
    Ok(bundle.join(root))
}

/// What a hook did: the destinations it bound, and why it left others alone.
#[derive(Debug, Default)]
pub struct HookReport {
    /// Destinations inside the container that now show the mount's files.
    pub bound: Vec<String>,
    /// Files left alone, with the reason (the runtime still starts the container).
    pub skipped: Vec<String>,
}

/// Binds every file the mount at `mountpoint` serves onto the same path under `rootfs`.
///
/// When nothing is mounted at `mountpoint` the container starts with the kernel's files
/// (a skipped entry says so) rather than not at all, as lxcfs's own hook does. A destination
/// that is missing, or reached through a symlink (a container image must not be able to
/// aim a root-owned mount elsewhere), is skipped.
pub fn bind_into(rootfs: &Path, mountpoint: &Path) -> Result<HookReport, HookError> {
    let mut report = HookReport::default();
    let live = mountpoint
        .canonicalize()
        .is_ok_and(|m| crate::mounts::is_lxcfs_mountpoint(&m));
    if !live {
        report.skipped.push(format!(
            "everything: no lxcfs filesystem is mounted at {}",
            mountpoint.display()
        ));
        return Ok(report);
    }
    let Ok(root) = rootfs.canonicalize() else {
        report.skipped.push(format!(
            "everything: no root filesystem at {}",
            rootfs.display()
        ));
        return Ok(report);
    };
    for (src, dst) in bind_pairs(mountpoint, Path::exists) {
        let rel = dst.trim_start_matches('/');
        let target = root.join(rel);
        match target.canonicalize() {
            Ok(real) if real == target => {}
            Ok(real) => {
                report
                    .skipped
                    .push(format!("{dst}: a symlink (to {})", real.display()));
                continue;
            }
            Err(e) => {
                report.skipped.push(format!("{dst}: {e}"));
                continue;
            }
        }
        mount(
            Some(&src),
            &target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|source| HookError::Mount {
            src: src.clone(),
            dst: target.clone(),
            source,
        })?;
        report.bound.push(dst);
    }
    Ok(report)
}

/// `lxcfs-rs hook oci`: reads the OCI state from stdin and binds the files.
pub fn run_oci(mountpoint: &Path) -> Result<HookReport, HookError> {
    let mut state = String::new();
    std::io::stdin()
        .read_to_string(&mut state)
        .map_err(HookError::StateRead)?;
    bind_into(&oci_rootfs(&state)?, mountpoint)
}

/// `lxcfs-rs hook lxc`: binds the files under `$LXC_ROOTFS_MOUNT`.
pub fn run_lxc(mountpoint: &Path) -> Result<HookReport, HookError> {
    let rootfs = std::env::var_os("LXC_ROOTFS_MOUNT")
        .filter(|r| !r.is_empty())
        .ok_or(HookError::NoLxcRootfs)?;
    bind_into(Path::new(&rootfs), mountpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(config: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        dir
    }

    #[test]
    fn rootfs_is_relative_to_the_bundle() {
        let b = bundle(r#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true}}"#);
        let state = format!(
            r#"{{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":42,"bundle":"{}"}}"#,
            b.path().display()
        );
        assert_eq!(oci_rootfs(&state).unwrap(), b.path().join("rootfs"));
        let b = bundle(r#"{"root":{"path":"/srv/roots/c2"}}"#);
        let state = format!(r#"{{"bundle":"{}"}}"#, b.path().display());
        assert_eq!(oci_rootfs(&state).unwrap(), PathBuf::from("/srv/roots/c2"));
    }

    #[test]
    fn bad_state_and_config_are_clear_errors() {
        for state in ["", "not json"] {
            let e = oci_rootfs(state).unwrap_err();
            assert!(matches!(e, HookError::StateJson(_)), "{state:?}: {e}");
        }
        for state in ["{}", r#"{"bundle":""}"#, r#"{"bundle":7}"#] {
            let e = oci_rootfs(state).unwrap_err();
            assert!(matches!(e, HookError::NoBundle), "{state:?}: {e}");
        }
        let missing = r#"{"bundle":"/nonexistent/bundle"}"#;
        let e = oci_rootfs(missing).unwrap_err();
        assert!(matches!(e, HookError::ConfigRead { .. }), "{e}");
        let text = crate::error_chain::Chain(&e).to_string();
        assert!(text.contains("/nonexistent/bundle/config.json"), "{text}");
        assert!(text.contains("No such file"), "the cause is kept: {text}");
        let b = bundle("{");
        let state = format!(r#"{{"bundle":"{}"}}"#, b.path().display());
        let e = oci_rootfs(&state).unwrap_err();
        assert!(matches!(e, HookError::ConfigJson { .. }), "{e}");
        for config in ["{}", r#"{"root":{}}"#, r#"{"root":{"path":""}}"#] {
            let b = bundle(config);
            let state = format!(r#"{{"bundle":"{}"}}"#, b.path().display());
            let e = oci_rootfs(&state).unwrap_err();
            assert!(matches!(e, HookError::NoRootPath { .. }), "{config:?}: {e}");
        }
    }

    #[test]
    fn nothing_mounted_skips_everything() {
        let dir = tempfile::tempdir().unwrap();
        let report = bind_into(dir.path(), &dir.path().join("no-mount")).unwrap();
        assert!(report.bound.is_empty());
        assert_eq!(report.skipped.len(), 1);
        assert!(
            report.skipped[0].contains("no lxcfs filesystem"),
            "{report:?}"
        );
    }
}
