//! The busybox root filesystem the containers run in, with the static C probe.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};

use super::open_to_all;
use crate::common::{TestDir, describe};

/// Where busybox-static installs the busybox the root filesystem is made of.
pub(super) const BUSYBOX: &str = "/bin/busybox";

/// Source of `/bin/probe`, the container-side helper (see its header for the commands).
const PROBE_C: &str = r##"/* The end-to-end tests' helper inside containers (built with
 * gcc -static, so it needs no libraries in the busybox root filesystem). It reads files
 * with plain read(2), so what it prints is what any read-based tool sees, and asks glibc
 * what programs ask it.
 *
 *   probe read FILE...   the files' bytes, one read(2) loop each
 *   probe sysconf        "onln N", "conf N", "phys_kb N": sysconf(_SC_NPROCESSORS_ONLN),
 *                        sysconf(_SC_NPROCESSORS_CONF), sysconf(_SC_PHYS_PAGES) in kB
 *   probe touch MIB      "total", "before", "after": MemTotal, then MemAvailable before and
 *                        after touching MIB MiB of fresh memory, read while it is still held
 *   probe loadavg        "pid N" (our own pid as our pid namespace numbers it), then the file
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static char buf[1 << 20];

static size_t slurp(const char *path)
{
	int fd = open(path, O_RDONLY);
	size_t n = 0;

	if (fd < 0) {
		perror(path);
		exit(2);
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);

		if (r < 0) {
			perror(path);
			exit(2);
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = 0;
	return n;
}

static long long meminfo_kb(const char *key)
{
	size_t k = strlen(key);
	char *line = buf;

	slurp("/proc/meminfo");
	while (line && *line) {
		if (!strncmp(line, key, k) && line[k] == ':')
			return atoll(line + k + 1);
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	fprintf(stderr, "probe: no %s line in /proc/meminfo\n", key);
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "read")) {
		for (int i = 2; i < argc; i++) {
			size_t n = slurp(argv[i]);

			fwrite(buf, 1, n, stdout);
		}
	} else if (argc == 2 && !strcmp(argv[1], "sysconf")) {
		long long phys = (long long)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE) / 1024;

		printf("onln %ld\nconf %ld\nphys_kb %lld\n", sysconf(_SC_NPROCESSORS_ONLN),
		       sysconf(_SC_NPROCESSORS_CONF), phys);
	} else if (argc == 3 && !strcmp(argv[1], "touch")) {
		size_t len = (size_t)atol(argv[2]) << 20;
		long long total = meminfo_kb("MemTotal");
		long long before = meminfo_kb("MemAvailable");
		char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED) {
			perror("mmap");
			return 2;
		}
		memset(p, 1, len);
		/* Keep the stores: the memory must really be charged while we read. */
		__asm__ volatile("" : : "r"(p) : "memory");
		long long after = meminfo_kb("MemAvailable");

		printf("total %lld\nbefore %lld\nafter %lld\n", total, before, after);
	} else if (argc == 2 && !strcmp(argv[1], "loadavg")) {
		size_t n = slurp("/proc/loadavg");

		printf("pid %d\n", (int)getpid());
		fwrite(buf, 1, n, stdout);
	} else {
		fprintf(stderr, "usage: probe read FILE... | sysconf | touch MIB | loadavg\n");
		return 2;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
"##;

/// A busybox root filesystem with `/bin/probe`, shared read-only by all containers of a test
/// binary run: built by the first test that asks and removed when the last holder drops it.
pub struct Rootfs {
    dir: TestDir,
}

impl Rootfs {
    /// The shared root filesystem, built now if no test holds one.
    pub fn shared() -> Arc<Rootfs> {
        static SHARED: Mutex<Weak<Rootfs>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rootfs) = slot.upgrade() {
            return rootfs;
        }
        let rootfs = Arc::new(Rootfs::build());
        *slot = Arc::downgrade(&rootfs);
        rootfs
    }

    fn build() -> Rootfs {
        let dir = TestDir::new();
        open_to_all(dir.path());
        let root = dir.join("rootfs");
        // Mount points too: runc cannot create them in a user-namespaced container, whose
        // root does not own this directory.
        for d in ["bin", "dev", "proc", "sys", "tmp", "sync"] {
            fs::create_dir_all(root.join(d))
                .unwrap_or_else(|e| panic!("creating {}/{d}: {e}", root.display()));
        }
        open_to_all(&root);
        let bin = root.join("bin");
        fs::copy(BUSYBOX, bin.join("busybox")).unwrap_or_else(|e| panic!("copying {BUSYBOX}: {e}"));
        let list = Command::new(BUSYBOX)
            .arg("--list")
            .output()
            .unwrap_or_else(|e| panic!("{BUSYBOX} --list: {e}"));
        assert!(
            list.status.success(),
            "{BUSYBOX} --list: {}",
            describe(&list)
        );
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            // The list names busybox itself: a link there would replace the binary.
            if applet.is_empty() || applet == "busybox" || applet.contains('/') {
                continue;
            }
            symlink("busybox", bin.join(applet))
                .unwrap_or_else(|e| panic!("linking applet {applet}: {e}"));
        }
        let src = dir.join("probe.c");
        fs::write(&src, PROBE_C).expect("writing probe.c");
        let out = Command::new("gcc")
            .args(["-static", "-O1", "-o"])
            .arg(bin.join("probe"))
            .arg(&src)
            .output()
            .unwrap_or_else(|e| panic!("running gcc: {e}"));
        assert!(
            out.status.success(),
            "gcc -static could not build the probe (scripts/deps.sh installs gcc and \
             libc6-dev, whose libc.a static linking needs): {}",
            describe(&out)
        );
        Rootfs { dir }
    }

    /// The root filesystem's directory.
    pub fn path(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// The probe, which is static and so runs on the host too (for host reference values).
    pub fn probe(&self) -> PathBuf {
        self.path().join("bin/probe")
    }

    /// `probe ARGS` run on the host.
    pub fn probe_on_host(&self, args: &[&str]) -> String {
        let out = Command::new(self.probe())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running the probe on the host: {e}"));
        assert!(out.status.success(), "probe {args:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
