//! The filesystem itself: modes, owner, read-only refusals and the mount options.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use crate::common::*;

#[test]
fn modes_owner_and_read_only() {
    require!(mount);
    require!(
        program "setpriv",
        "setpriv (util-linux) is missing; it runs the unprivileged reader of the allow_other check"
    );
    let d = Daemon::start(&[]);
    let mut paths: Vec<(String, u32)> = DIRS.iter().map(|p| (p.to_string(), 0o555)).collect();
    paths.extend(GENERATED.iter().map(|p| (p.to_string(), 0o444)));
    paths.push(("sys/devices/system/cpu/cpu0".to_string(), 0o555));
    for (rel, want) in &paths {
        let p = d.path(rel);
        let m = fs::metadata(&p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
        assert_eq!(
            m.mode() & 0o7777,
            *want,
            "{rel}: expected mode {want:o}, got {:o}",
            m.mode() & 0o7777
        );
        assert_eq!(
            (m.uid(), m.gid()),
            (0, 0),
            "{rel}: expected owner root:root, got {}:{}",
            m.uid(),
            m.gid()
        );
        assert_eq!(
            m.is_dir(),
            *want == 0o555,
            "{rel}: expected {} ",
            if *want == 0o555 {
                "a directory"
            } else {
                "a file"
            }
        );
    }

    let denied = |what: &str, errno: Option<i32>| {
        assert!(
            errno == Some(nix::libc::EACCES) || errno == Some(nix::libc::EROFS),
            "{what}: expected EACCES or EROFS, got {:?}",
            errno.map(std::io::Error::from_raw_os_error)
        );
    };
    let meminfo = d.path("proc/meminfo");
    denied(
        "open proc/meminfo for writing",
        errno_of(&OpenOptions::new().write(true).open(&meminfo)),
    );
    denied(
        "create proc/new",
        errno_of(&fs::File::create(d.path("proc/new"))),
    );
    denied(
        "mkdir proc/newdir",
        errno_of(&fs::create_dir(d.path("proc/newdir"))),
    );
    denied(
        "rename proc/meminfo",
        errno_of(&fs::rename(&meminfo, d.path("proc/meminfo2"))),
    );
    denied("unlink proc/meminfo", errno_of(&fs::remove_file(&meminfo)));
    assert!(
        fs::read(&meminfo).is_ok_and(|b| !b.is_empty()),
        "proc/meminfo still reads after the failed writes"
    );

    let m = fuse_mount_at(&d.mnt).expect("the mount is in mountinfo");
    assert!(
        m.mount_options.split(',').any(|o| o == "ro"),
        "expected a read-only mount, mountinfo options {:?}",
        m.mount_options
    );
    assert!(
        m.super_options.split(',').any(|o| o == "allow_other"),
        "expected allow_other, mountinfo super options {:?}",
        m.super_options
    );

    // allow_other in practice: an unprivileged user reads it too.
    let parent = d.mnt.parent().expect("mount point parent");
    fs::set_permissions(parent, fs::Permissions::from_mode(0o755)).expect("chmod the temp dir");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(&meminfo)
        .output()
        .expect("running setpriv");
    assert_succeeds(&out, "uid 65534 reading proc/meminfo (allow_other)");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("MemTotal:"),
        "uid 65534 read: {}",
        describe(&out)
    );
}
