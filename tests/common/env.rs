//! Environment checks: what a test needs, and the skip-or-fail policy when it is missing.

use std::fs;
use std::os::unix::fs::FileTypeExt;

use super::CONTROLLERS;
use super::mounts::v1_mounts;

/// Returns from the calling test when a prerequisite is missing, after [`skip`] said why (a
/// panic when `CI` is set, a `skipping: ...` line otherwise):
///
/// - `require!(mount)`: [`can_mount`];
/// - `require!(containers)`: [`super::container::can_run_containers`];
/// - `require!(program "setpriv", "why")`: [`have_program`], skipping with `why`;
/// - `require!(condition, "why")`: any `bool`, skipping with `why`.
#[allow(unused_macros)]
macro_rules! require {
    (mount) => {
        if !$crate::common::can_mount() {
            return;
        }
    };
    (containers) => {
        if !$crate::common::container::can_run_containers() {
            return;
        }
    };
    (program $prog:expr, $why:expr) => {
        if !$crate::common::have_program($prog) {
            $crate::common::skip($why);
            return;
        }
    };
    ($ok:expr, $why:expr) => {
        if !$ok {
            $crate::common::skip($why);
            return;
        }
    };
}

/// Whether we run in CI (`CI` set to anything but empty, `0` or `false`), where a missing
/// prerequisite is a failure rather than a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Reports a missing prerequisite: a panic in CI, a "skipping" line elsewhere. Returns
/// `false` so callers can `return` on it.
pub fn skip(reason: &str) -> bool {
    if in_ci() {
        panic!("CI is set, so this test must run, but {reason}");
    }
    eprintln!("skipping: {reason}");
    false
}

/// Whether `prog` is on PATH.
pub fn have_program(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(prog).is_file()))
}

/// Where `prog` is on PATH (the first match), for tests that must name the very binary
/// another part of the suite runs.
pub fn find_program(prog: &str) -> Option<std::path::PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// Root, /dev/fuse, the v1 cgroup hierarchies the readers need, and util-linux `unshare`.
/// Returns false (after printing why) when the test should be skipped; panics in CI.
pub fn can_mount() -> bool {
    if !nix::unistd::geteuid().is_root() {
        return skip(
            "the test needs root (it mounts FUSE filesystems and creates cgroups); run it as root",
        );
    }
    match fs::metadata("/dev/fuse") {
        Ok(m) if m.file_type().is_char_device() => {}
        Ok(_) => return skip("/dev/fuse is not a character device"),
        Err(e) => return skip(&format!("/dev/fuse is missing ({e}); modprobe fuse")),
    }
    let mounts = v1_mounts();
    for c in CONTROLLERS {
        if !mounts.contains_key(*c) {
            return skip(&format!(
                "no cgroup v1 hierarchy with the {c} controller in /proc/self/mountinfo"
            ));
        }
    }
    for prog in [
        "sh", "cat", "dd", "unshare", "umount", "stat", "ls", "sleep",
    ] {
        if !have_program(prog) {
            return skip(&format!("program {prog} is not installed"));
        }
    }
    true
}
