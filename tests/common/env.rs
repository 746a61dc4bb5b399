//! Environment checks: what a test needs, and the skip-or-fail policy when it is missing.

use std::fs;
use std::os::unix::fs::FileTypeExt;

use super::CONTROLLERS;
use super::mounts::v1_mounts;
pub use super::policy::skip;

/// Returns from the calling test when a prerequisite is missing, after [`skip`] said why (a
/// panic when `CI` is set, a `skipping: ...` line otherwise):
///
/// - `require!(mount)`: [`can_mount`];
/// - `require!(fuse)`: [`can_mount_fuse`] (a daemon over a fixture tree, no real cgroups);
/// - `require!(containers)`: [`super::container::can_run_containers`];
/// - `require!(cpus_0_and_1)`: [`cpus_0_and_1_online`];
/// - `require!(program "setpriv", "why")`: [`have_program`], skipping with `why`;
/// - `require!(condition, "why")`: any `bool`, skipping with `why`.
#[allow(unused_macros)]
macro_rules! require {
    (mount) => {
        if !$crate::common::can_mount() {
            return;
        }
    };
    (fuse) => {
        if !$crate::common::can_mount_fuse() {
            return;
        }
    };
    (containers) => {
        if !$crate::common::container::can_run_containers() {
            return;
        }
    };
    (cpus_0_and_1) => {
        if !$crate::common::cpus_0_and_1_online() {
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

/// Root and /dev/fuse: what mounting the daemon takes, for tests whose readers sit in a
/// fixture tree's cgroups rather than the host's. Returns false (after printing why) when
/// the test should be skipped; panics in CI.
pub fn can_mount_fuse() -> bool {
    if !nix::unistd::geteuid().is_root() {
        return skip("the test needs root (it mounts a FUSE filesystem); run it as root");
    }
    match fs::metadata("/dev/fuse") {
        Ok(m) if m.file_type().is_char_device() => true,
        Ok(_) => skip("/dev/fuse is not a character device"),
        Err(e) => skip(&format!("/dev/fuse is missing ({e}); modprobe fuse")),
    }
}

/// [`can_mount_fuse`], the v1 cgroup hierarchies the readers need, and util-linux `unshare`.
/// Returns false (after printing why) when the test should be skipped; panics in CI.
pub fn can_mount() -> bool {
    if !can_mount_fuse() {
        return false;
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
        "sh", "cat", "dd", "unshare", "mount", "umount", "stat", "ls", "sleep",
    ] {
        if !have_program(prog) {
            return skip(&format!("program {prog} is not installed"));
        }
    }
    true
}

/// Whether CPUs 0 and 1 are both online. A test that gives a reader the cpuset `0` and expects
/// one CPU proves nothing on a host whose only CPU is 0: the host's own files say the same.
/// Returns false (after printing why) when the test should be skipped; panics in CI.
pub fn cpus_0_and_1_online() -> bool {
    let path = "/sys/devices/system/cpu/online";
    let online = fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    if list_has(&online, 0) && list_has(&online, 1) {
        return true;
    }
    skip(&format!(
        "the test needs CPUs 0 and 1 online (with one CPU, a cpuset of CPU 0 shows what the \
         host shows anyway); online is {:?}",
        online.trim()
    ))
}

/// Whether the kernel CPU list `list` (`0-3,6`) holds `cpu`.
fn list_has(list: &str, cpu: u32) -> bool {
    list.trim().split(',').any(|range| {
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        let (lo, hi) = (lo.parse::<u32>(), hi.parse::<u32>());
        lo.is_ok_and(|lo| lo <= cpu) && hi.is_ok_and(|hi| cpu <= hi)
    })
}
