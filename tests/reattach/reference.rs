//! A reference re-attach, done by the test: the mechanics of restart.md §5 in a small C
//! helper, so that the harness can be proven against a kernel that really heals the
//! containers before lxcfs-rs does it itself. It is not the feature: it re-binds only the
//! dead mounts the test names, from the mount point the test names.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use crate::common::{TestDir, describe};
use crate::namespaces::{Namespaces, root_of};
use crate::report::{NsReport, Reattach};

/// The helper's source. `rebind PID SOURCE TARGET`: clones the live tree at SOURCE in our
/// (the host's) mount namespace, enters PID's mount namespace (the process is single-threaded,
/// as setns requires), moves the clone beneath the dead mount at TARGET and unmounts the dead
/// top ("fixed"); when the kernel refuses to move beneath (EINVAL: a locked top, or a kernel
/// before 6.5), mounts the clone on top instead ("on_top"). Exits non-zero saying why when
/// neither works.
const REBIND_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#define F_EMPTY_PATH 0x4
#define BENEATH 0x200

int main(int argc, char **argv)
{
	char path[64];
	int ns, tree;

	if (argc != 4) {
		fprintf(stderr, "usage: rebind PID SOURCE TARGET\n");
		return 2;
	}
	snprintf(path, sizeof(path), "/proc/%s/ns/mnt", argv[1]);
	ns = open(path, O_RDONLY | O_CLOEXEC);
	if (ns < 0) {
		perror(path);
		return 1;
	}
	tree = syscall(SYS_open_tree, AT_FDCWD, argv[2], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (tree < 0) {
		perror("open_tree");
		return 1;
	}
	if (setns(ns, CLONE_NEWNS)) {
		perror("setns");
		return 1;
	}
	if (!syscall(SYS_move_mount, tree, "", AT_FDCWD, argv[3], F_EMPTY_PATH | BENEATH)) {
		if (umount2(argv[3], MNT_DETACH)) {
			fprintf(stderr, "moved beneath, but the dead top stays: umount2: %s\n",
				strerror(errno));
			return 1;
		}
		puts("fixed");
		return 0;
	}
	if (errno != EINVAL) {
		perror("move_mount beneath");
		return 1;
	}
	if (syscall(SYS_move_mount, tree, "", AT_FDCWD, argv[3], F_EMPTY_PATH)) {
		perror("move_mount on top");
		return 1;
	}
	puts("on_top");
	return 0;
}
"#;

/// The helper, built with gcc.
pub(crate) struct Rebinder {
    dir: TestDir,
}

impl Rebinder {
    /// Builds the helper; panics with gcc's output if it cannot.
    pub(crate) fn build() -> Rebinder {
        let dir = TestDir::new();
        let src = dir.join("rebind.c");
        std::fs::write(&src, REBIND_C).expect("writing rebind.c");
        let out = Command::new("gcc")
            .args(["-O1", "-Wall", "-o"])
            .arg(dir.join("rebind"))
            .arg(&src)
            .output()
            .unwrap_or_else(|e| panic!("running gcc: {e}"));
        assert!(out.status.success(), "gcc rebind.c: {}", describe(&out));
        Rebinder { dir }
    }

    /// One pass over `nss`: every mount of a `dead` connection left on top is re-bound from
    /// the same file or directory under `live_mnt` (whose connection is `live`); dead mounts
    /// already covered count as on top. Its report, in the contract's shape.
    pub(crate) fn pass(
        &self,
        live_mnt: &Path,
        live: &str,
        dead: &[String],
        nss: &Namespaces,
    ) -> Reattach {
        let mut report = Reattach {
            live_dev: live.to_string(),
            namespaces: Vec::new(),
            dead: 0,
            fixed: 0,
            on_top: 0,
            failed: 0,
        };
        let own = std::fs::metadata("/proc/self/ns/mnt")
            .expect("our mount namespace")
            .ino();
        for ns in nss.values() {
            // A slip in the scan must never re-bind the host's own files.
            assert_ne!(ns.ns, own, "{}: the test's own mount namespace", ns.label());
            let (exposed, covered) = ns.dead_split(dead);
            if exposed.is_empty() && covered.is_empty() {
                continue;
            }
            let mut n = NsReport {
                ns: ns.ns,
                pid: ns.pids[0],
                dead: (exposed.len() + covered.len()) as u64,
                fixed: 0,
                on_top: covered.len() as u64,
                failed: Vec::new(),
            };
            for m in exposed {
                let source = live_mnt.join(root_of(m).trim_start_matches('/'));
                let out = Command::new(self.dir.join("rebind"))
                    .arg(ns.pids[0].to_string())
                    .arg(&source)
                    .arg(&m.mount_point)
                    .output()
                    .unwrap_or_else(|e| panic!("running rebind: {e}"));
                match String::from_utf8_lossy(&out.stdout).trim() {
                    "fixed" if out.status.success() => n.fixed += 1,
                    "on_top" if out.status.success() => n.on_top += 1,
                    _ => n
                        .failed
                        .push(format!("{}: {}", m.mount_point.display(), describe(&out))),
                }
            }
            report.dead += n.dead;
            report.fixed += n.fixed;
            report.on_top += n.on_top;
            report.failed += n.failed.len() as u64;
            report.namespaces.push(n);
        }
        report
    }
}
