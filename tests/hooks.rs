//! The OCI hook's promises (README, "Use it with containers"), run as a runtime runs it:
//! `lxcfs-rs hook oci MOUNTPOINT` with the container's OCI state on stdin, whose bundle's
//! `config.json` names the root filesystem.
//!
//! - A destination in the root filesystem that is a symlink is skipped, so an image cannot
//!   aim the root-owned bind mount at a host file (needs root: the hook mounts for real, in a
//!   private mount namespace of the test's own, against a live daemon).
//! - Nothing mounted at the mount point: one line on stderr, exit 0, the container starts.
//! - A malformed state or config fails the start with exit 1 and one line with its cause.

#[macro_use]
mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The files under `/proc` the hook binds (`BIND_TARGETS` of `src/bind.rs`): every generated
/// `proc/` file but the pressure ones, which runc refuses to bind. All are present in the
/// fixture's root filesystem so that only the symlinked one is skipped.
fn proc_files() -> impl Iterator<Item = &'static str> {
    GENERATED
        .iter()
        .copied()
        .filter(|f| f.starts_with("proc/") && !f.starts_with("proc/pressure/"))
}
const CPU_DIR: &str = "sys/devices/system/cpu";

/// The destination an image turned into a symlink.
const LINKED: &str = "proc/meminfo";

/// What the file outside the root filesystem holds, before and (it must) after the hook.
const PRECIOUS: &str = "a host file the container must not cover\n";

/// A bundle as a runtime hands it to the hook: `config.json` with `root.path` (relative, as
/// `runc spec` writes it) and a root filesystem whose `proc/meminfo` is a symlink to a file
/// outside it.
struct Bundle {
    dir: TestDir,
}

impl Bundle {
    fn new() -> Bundle {
        let dir = TestDir::new();
        let b = Bundle { dir };
        for dir in ["proc", CPU_DIR] {
            fs::create_dir_all(b.rootfs().join(dir)).expect("creating the rootfs");
        }
        for f in proc_files().filter(|f| *f != LINKED) {
            fs::write(b.rootfs().join(f), "the image's own file\n").expect("writing a file");
        }
        fs::write(b.outside(), PRECIOUS).expect("writing the outside file");
        symlink(b.outside(), b.rootfs().join(LINKED)).expect("making the symlink");
        b.write_config(r#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true}}"#);
        b
    }

    /// The bundle directory.
    fn path(&self) -> PathBuf {
        self.dir.join("bundle")
    }

    fn rootfs(&self) -> PathBuf {
        self.path().join("rootfs")
    }

    /// The host file the symlink points at.
    fn outside(&self) -> PathBuf {
        self.dir.join("outside-meminfo")
    }

    fn write_config(&self, text: &str) {
        fs::write(self.path().join("config.json"), text).expect("writing config.json");
    }

    /// The OCI state runc gives a `createContainer` hook.
    fn state(&self) -> String {
        format!(
            r#"{{"ociVersion":"1.0.2","id":"hooked","status":"creating","pid":{},"bundle":"{}"}}"#,
            std::process::id(),
            self.path().display()
        )
    }

    /// Runs `action` (a shell command line using `$BIN`, `$MNT`, `$ROOTFS`) in a private mount
    /// namespace, so that whatever it mounts goes with it, and records what it leaves there.
    fn observe(&self, mnt: &Path, action: &str) -> Observed {
        let out_dir = TestDir::new();
        fs::write(out_dir.join("state"), self.state()).expect("writing the state");
        let script = format!(
            "{action} <\"$OUT/state\" >\"$OUT/stdout\" 2>\"$OUT/stderr\"; echo $? >\"$OUT/rc\"\n\
             cat /proc/self/mountinfo >\"$OUT/mountinfo\"\n\
             cat \"$OUTSIDE\" >\"$OUT/outside\"\n"
        );
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .env("BIN", BIN)
            .env("MNT", mnt)
            .env("ROOTFS", self.rootfs())
            .env("OUTSIDE", self.outside())
            .env("OUT", out_dir.path());
        checked(cmd, &["unshare", "--mount", action]);
        let read = |f: &str| read_or_err(&out_dir.join(f));
        Observed {
            rc: read("rc").trim().to_string(),
            stderr: read("stderr"),
            mounts: parse_mountinfo(&read("mountinfo"))
                .into_iter()
                .map(|m| m.mount_point)
                .collect(),
            outside: read("outside"),
        }
    }

    /// Whether the file outside the root filesystem is as it was: nothing mounted on it and
    /// its content unchanged. `Err` says what happened to it.
    fn outside_untouched(&self, seen: &Observed) -> Result<(), String> {
        let mut wrong = Vec::new();
        if seen.mounts.contains(&self.outside()) {
            wrong.push(format!(
                "something is mounted on {}",
                self.outside().display()
            ));
        }
        if seen.outside != PRECIOUS {
            wrong.push(format!("it reads {:?}", first_line(&seen.outside)));
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(wrong.join("; "))
        }
    }
}

/// What a hook (or the naive stand-in) left in its mount namespace.
struct Observed {
    /// Its exit status.
    rc: String,
    stderr: String,
    /// Every mount point in the namespace after it ran.
    mounts: Vec<PathBuf>,
    /// What the file outside the root filesystem read afterwards, in that namespace.
    outside: String,
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// The skip the hook reports for a symlinked destination; panics unless stderr is exactly it.
#[track_caller]
fn assert_skipped_symlink(stderr: &str, outside: &Path) {
    let want = format!(
        "lxcfs-rs hook: not bound: /{LINKED}: a symlink (to {})",
        outside.display()
    );
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [want.as_str()],
        "the hook's stderr should be one line naming the skipped symlink"
    );
}

/// A root filesystem whose `proc/meminfo` points at a host file: the hook binds every other
/// file and leaves that one, and the host file, alone. The same check catches a naive hook
/// that binds through the symlink.
#[test]
fn symlinked_destination_is_skipped_and_its_target_left_alone() {
    require!(mount);
    let d = Daemon::start(&[]);
    let b = Bundle::new();
    let seen = b.observe(&d.mnt, "\"$BIN\" hook oci \"$MNT\"");
    assert_eq!(seen.rc, "0", "the hook must let the container start");
    if let Err(e) = b.outside_untouched(&seen) {
        panic!("the hook followed the symlink out of the root filesystem: {e}");
    }
    assert_skipped_symlink(&seen.stderr, &b.outside());
    // It did mount (against the live daemon), just not there.
    let root = b.rootfs();
    for dest in proc_files().filter(|f| *f != LINKED).chain([CPU_DIR]) {
        assert!(
            seen.mounts.contains(&root.join(dest)),
            "/{dest} should be bound; mount points after the hook: {:?}",
            seen.mounts
        );
    }
    assert!(
        !seen.mounts.contains(&root.join(LINKED)),
        "/{LINKED} itself must not be bound"
    );

    // The check can fail: a hook that binds without looking (mount(8) follows the symlink)
    // covers the host file, and the check above says so.
    let naive = b.observe(
        &d.mnt,
        "mount --bind \"$MNT/proc/meminfo\" \"$ROOTFS/proc/meminfo\"",
    );
    assert_eq!(
        naive.rc, "0",
        "the naive bind mount failed: {}",
        naive.stderr
    );
    let e = b
        .outside_untouched(&naive)
        .expect_err("the check must catch a bind mount through the symlink");
    assert!(
        e.contains("mounted on") && e.contains("MemTotal:"),
        "the check should see both the mount and the daemon's meminfo on the host file: {e}"
    );
    assert_eq!(
        fs::read_to_string(b.outside()).expect("reading the outside file"),
        PRECIOUS,
        "outside the namespaces the host file was never touched"
    );
}

/// Nothing mounted at the mount point: the hook says so in one line on stderr and exits 0,
/// so the runtime starts the container with the kernel's files rather than not at all.
#[test]
fn nothing_mounted_lets_the_container_start_with_one_line() {
    let b = Bundle::new();
    let empty = TestDir::new();
    let mnt = empty.path().to_str().expect("utf-8 path");
    let out = run_bin_with_stdin(&["hook", "oci", mnt], b.state().as_bytes());
    assert_succeeds(&out, "hook oci with nothing mounted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [format!(
            "lxcfs-rs hook: not bound: everything: no lxcfs filesystem is mounted at {mnt}"
        )],
        "one line on stderr saying nothing was bound: {}",
        describe(&out)
    );
    assert!(out.stdout.is_empty(), "stdout: {}", describe(&out));
    assert_eq!(
        fs::read_to_string(b.outside()).expect("reading the outside file"),
        PRECIOUS
    );
}

/// A bundle whose `config.json` cannot be used fails the start with one line naming it.
#[test]
fn malformed_config_fails_the_start_with_one_line() {
    let b = Bundle::new();
    let config = b.path().join("config.json");
    let config = config.display();
    for (text, needle) in [
        ("{", format!("lxcfs-rs: hook: {config}: not JSON: EOF")),
        ("{}", format!("lxcfs-rs: hook: {config}: no root.path")),
        (
            r#"{"root":{"path":""}}"#,
            format!("lxcfs-rs: hook: {config}: no root.path"),
        ),
    ] {
        b.write_config(text);
        let out = run_bin_with_stdin(&["hook", "oci", "/nonexistent"], b.state().as_bytes());
        assert_fails(&out, 1, &needle);
    }
}

/// A hook that cannot work fails the container's start with one line that carries the
/// cause: the file and what the kernel or the JSON parser said.
#[test]
fn hook_errors_are_one_line_with_their_cause() {
    let hook_oci = |state: &str| run_bin_with_stdin(&["hook", "oci"], state.as_bytes());
    let out = hook_oci(r#"{"bundle":"/nonexistent/lxcfs-rs-bundle"}"#);
    assert_fails(
        &out,
        1,
        "lxcfs-rs: hook: cannot read /nonexistent/lxcfs-rs-bundle/config.json: No such file or directory",
    );
    let out = hook_oci("not json");
    assert_fails(
        &out,
        1,
        "lxcfs-rs: hook: OCI state on stdin: not JSON: expected",
    );
    let out = hook_oci("{}");
    assert_fails(
        &out,
        1,
        "lxcfs-rs: hook: OCI state on stdin: no \"bundle\" field",
    );
    let out = Command::new(BIN)
        .args(["hook", "lxc"])
        .env_remove("LXC_ROOTFS_MOUNT")
        .output()
        .expect("running lxcfs-rs hook lxc");
    assert_fails(&out, 1, "lxcfs-rs: hook: LXC_ROOTFS_MOUNT is not set");
}
