//! The busybox root filesystem the containers run in, with the static C probe.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};

use super::open_to_all;
use super::sysinfo_probe::SYSINFO_PROBE_C;
use crate::common::{TestDir, checked, describe};

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
 *   probe nest CMD ARGS...
 *                        runs CMD in new user, mount and pid namespaces (the user namespace
 *                        maps root to our uid and gid; mounts copied into it are locked),
 *                        and exits with its status
 *   probe loop STOP [READY [MS [reopen]]]
 *                        reads the bound files round after round until the file STOP exists
 *                        (see loop_main); creates READY after the first round; sleeps MS ms
 *                        (default 10) between rounds; with "reopen", the kept descriptor is
 *                        closed and opened again after a failed read
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
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

/* ---- probe loop: a container reading through a daemon restart --------------------------
 *
 * Each round opens, reads fully and closes every file of LOOP_FILES, and re-reads one
 * /proc/stat descriptor kept open from the start with pread at offset 0 (as top does, whose
 * descriptor must survive the restart too; with "reopen" a descriptor whose read failed is
 * closed and opened afresh in the next round, as a tool that reopens on error). A failure
 * never stops the loop: every failed call and every wrong content is an event, and the
 * round goes on with the next file. The first LOOP_SHOWN events of each kind are printed at
 * once (so a probe that hangs for good and is killed still leaves them in its output), all
 * are counted. The first good round after a bad one (every file read and right: the
 * reads recovered) is printed as "good MS", the first LOOP_SHOWN of them. Once STOP exists
 * it prints the summary section "loop" (see the Rust LoopSummary) and exits 0.
 */
#define LOOP_SHOWN 50

static const char *const LOOP_FILES[] = {
	"/proc/meminfo", "/proc/cpuinfo", "/proc/stat", "/proc/uptime",
	"/sys/devices/system/cpu/online",
};
#define N_LOOP_FILES (sizeof(LOOP_FILES) / sizeof(LOOP_FILES[0]))

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The errno values a reader of a FUSE file can meet, by name; glibc's strerrorname_np
 * would do, but the summary's keys must not depend on the libc the probe was built with. */
static const char *errno_name(int e)
{
	switch (e) {
	case ENOTCONN: return "ENOTCONN";
	case ECONNABORTED: return "ECONNABORTED";
	case ECONNREFUSED: return "ECONNREFUSED";
	case EIO: return "EIO";
	case EINTR: return "EINTR";
	case EBADF: return "EBADF";
	case ENOENT: return "ENOENT";
	case EINVAL: return "EINVAL";
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case ENOSYS: return "ENOSYS";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case ESTALE: return "ESTALE";
	default: return NULL;
	}
}

#define MAX_ERRNO 256
static struct {
	long long rounds, failures, wrong, max_us, max_gap_us, kept_reads;
	long long by_errno[MAX_ERRNO];
	long long start_us, last_ok_us, last_bad_us;
	int shown_failures, shown_wrong, shown_good;
	/* What the first good read of each kind showed; later rounds must agree. */
	long long memtotal_kb;
	int processors;
	char online[256];
} lp = { .memtotal_kb = -1, .processors = -1, .last_bad_us = -1 };

static void loop_fail(int err, const char *op, const char *path)
{
	lp.failures++;
	lp.by_errno[err > 0 && err < MAX_ERRNO ? err : 0]++;
	if (lp.shown_failures++ < LOOP_SHOWN) {
		const char *name = errno_name(err);

		if (name)
			printf("fail %lld %s %s %s\n", now_us() / 1000, name, op, path);
		else
			printf("fail %lld E%d %s %s\n", now_us() / 1000, err, op, path);
		fflush(stdout);
	}
}

static void loop_wrong(const char *path, const char *what)
{
	lp.wrong++;
	if (lp.shown_wrong++ < LOOP_SHOWN) {
		printf("wrong %lld %s %s\n", now_us() / 1000, path, what);
		fflush(stdout);
	}
}

/* Reads `fd` to the end into buf, with pread from offset 0 (`at_zero`) or with read from
 * where it is; -1 with errno on failure. */
static ssize_t read_all(int fd, int at_zero)
{
	size_t n = 0;

	for (;;) {
		ssize_t r = at_zero ? pread(fd, buf + n, sizeof(buf) - 1 - n, (off_t)n)
				    : read(fd, buf + n, sizeof(buf) - 1 - n);

		if (r < 0)
			return -1;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = 0;
	return (ssize_t)n;
}

/* Opens, reads fully and closes `path`; the failing call is named in *op. */
static ssize_t loop_read(const char *path, const char **op)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0) {
		*op = "open";
		return -1;
	}
	n = read_all(fd, 0);
	if (n < 0) {
		int e = errno;

		*op = "read";
		close(fd);
		errno = e;
		return -1;
	}
	if (close(fd) < 0) {
		*op = "close";
		return -1;
	}
	return n;
}

static long long memtotal_of(const char *text)
{
	const char *p = strstr(text, "MemTotal:");

	if (p != text && (!p || p[-1] != '\n'))
		return -1;
	return atoll(p + strlen("MemTotal:"));
}

static int processors_of(const char *text)
{
	int n = !strncmp(text, "processor", 9);

	for (const char *p = text; (p = strstr(p, "\nprocessor")); p++)
		n++;
	return n;
}

/* Checks one file's text; returns 0 if it is right, after recording what is wrong. */
static int loop_check(const char *path, const char *text)
{
	char what[400];

	if (!strcmp(path, "/proc/meminfo")) {
		long long kb = memtotal_of(text);

		if (kb <= 0) {
			loop_wrong(path, "no-MemTotal-line");
			return 1;
		}
		if (lp.memtotal_kb < 0)
			lp.memtotal_kb = kb;
		if (kb != lp.memtotal_kb) {
			snprintf(what, sizeof(what), "MemTotal %lld, first %lld", kb, lp.memtotal_kb);
			loop_wrong(path, what);
			return 1;
		}
	} else if (!strcmp(path, "/proc/cpuinfo")) {
		int n = processors_of(text);

		if (lp.processors < 0)
			lp.processors = n;
		if (n < 1 || n != lp.processors) {
			snprintf(what, sizeof(what), "processors %d, first %d", n, lp.processors);
			loop_wrong(path, what);
			return 1;
		}
	} else if (!strcmp(path, "/proc/stat")) {
		if (strncmp(text, "cpu ", 4)) {
			loop_wrong(path, "does-not-start-with-cpu");
			return 1;
		}
	} else if (!strcmp(path, "/proc/uptime")) {
		double up, idle;
		char end;

		/* Exactly one line: two numbers and the newline. */
		if (sscanf(text, "%lf %lf%c", &up, &idle, &end) != 3 || end != '\n' ||
		    strchr(text, '\n') != text + strlen(text) - 1) {
			snprintf(what, sizeof(what), "not-two-numbers %.60s", text);
			loop_wrong(path, what);
			return 1;
		}
	} else {
		size_t len = strlen(text);

		if (len == 0 || len >= sizeof(lp.online) || text[len - 1] != '\n') {
			loop_wrong(path, "not-one-line");
			return 1;
		}
		if (!lp.online[0])
			memcpy(lp.online, text, len + 1);
		if (strcmp(text, lp.online)) {
			snprintf(what, sizeof(what), "online %.*s, first %.*s", (int)len - 1, text,
				 (int)strlen(lp.online) - 1, lp.online);
			loop_wrong(path, what);
			return 1;
		}
	}
	return 0;
}

static void loop_latency(long long t0)
{
	long long dt = now_us() - t0;

	if (dt > lp.max_us)
		lp.max_us = dt;
}

static int loop_main(const char *stop, const char *ready, int pause_ms, int reopen)
{
	int kept = -1;

	printf("\n::section events\n");
	fflush(stdout);
	lp.start_us = lp.last_ok_us = now_us();
	for (;;) {
		int ok = 1;

		for (size_t i = 0; i < N_LOOP_FILES; i++) {
			const char *op = "";
			long long t0 = now_us();
			ssize_t n = loop_read(LOOP_FILES[i], &op);
			int err = errno;

			loop_latency(t0);
			if (n < 0) {
				loop_fail(err, op, LOOP_FILES[i]);
				ok = 0;
			} else if (loop_check(LOOP_FILES[i], buf)) {
				ok = 0;
			}
		}
		/* The kept descriptor is opened once; only if that open failed is it tried again. */
		long long t0 = now_us();

		if (kept < 0) {
			kept = open("/proc/stat", O_RDONLY);
			if (kept < 0) {
				loop_fail(errno, "open", "/proc/stat(kept)");
				ok = 0;
			}
		}
		if (kept >= 0) {
			if (read_all(kept, 1) < 0) {
				loop_fail(errno, "pread", "/proc/stat(kept)");
				ok = 0;
				if (reopen) {
					close(kept);
					kept = -1;
				}
			} else if (strncmp(buf, "cpu ", 4)) {
				loop_wrong("/proc/stat(kept)", "does-not-start-with-cpu");
				ok = 0;
			} else {
				lp.kept_reads++;
			}
		}
		loop_latency(t0);
		lp.rounds++;
		if (ok) {
			long long t = now_us();

			if (t - lp.last_ok_us > lp.max_gap_us)
				lp.max_gap_us = t - lp.last_ok_us;
			/* The first good round since a bad one: when the reads recovered. */
			if (lp.last_bad_us > lp.last_ok_us && lp.shown_good++ < LOOP_SHOWN) {
				printf("good %lld\n", t / 1000);
				fflush(stdout);
			}
			lp.last_ok_us = t;
		} else {
			lp.last_bad_us = now_us();
		}
		if (lp.rounds == 1 && ready) {
			int fd = open(ready, O_WRONLY | O_CREAT, 0644);

			if (fd >= 0)
				close(fd);
		}
		if (access(stop, F_OK) == 0)
			break;
		usleep((useconds_t)pause_ms * 1000);
	}
	long long end = now_us();

	printf("\n::section loop\n");
	printf("rounds %lld\nfailures %lld\nwrong %lld\n", lp.rounds, lp.failures, lp.wrong);
	printf("max_ms %lld\nmax_gap_ms %lld\nlast_ok_ago_ms %lld\n", lp.max_us / 1000,
	       lp.max_gap_us / 1000, (end - lp.last_ok_us) / 1000);
	printf("kept_reads %lld\nrun_ms %lld\n", lp.kept_reads, (end - lp.start_us) / 1000);
	printf("last_ok_ms %lld\nlast_bad_ms %lld\n", lp.last_ok_us / 1000,
	       lp.last_bad_us < 0 ? -1 : lp.last_bad_us / 1000);
	printf("memtotal_kb %lld\nprocessors %d\nonline %s", lp.memtotal_kb, lp.processors,
	       lp.online[0] ? lp.online : "-\n");
	for (int e = 0; e < MAX_ERRNO; e++) {
		const char *name = errno_name(e);

		if (!lp.by_errno[e])
			continue;
		if (name)
			printf("errno_%s %lld\n", name, lp.by_errno[e]);
		else
			printf("errno_E%d %lld\n", e, lp.by_errno[e]);
	}
	return 0;
}

/* Writes `text` to the file `path`; 0 or -1 (after saying why). */
static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	ssize_t n = fd < 0 ? -1 : write(fd, text, strlen(text));

	if (n != (ssize_t)strlen(text)) {
		perror(path);
		return -1;
	}
	close(fd);
	return 0;
}

/* probe nest: a reader in namespaces of its own inside the container, as a nested container
 * or a sandbox makes them. busybox unshare -U -r cannot map ids here (it writes gid_map
 * before denying setgroups), so the probe does it: setgroups denied first, then root mapped
 * to our own uid and gid, which needs no privilege. The mount namespace, owned by the new
 * user namespace, gets copies of the container's mounts, locked (they cannot be unmounted
 * from in there). Its mounts are made private, as unshare(1) does, so the container's own
 * mount events never reach it. */
static int nest_main(char **argv)
{
	char map[64];
	unsigned uid = (unsigned)geteuid(), gid = (unsigned)getegid();
	int status;
	pid_t pid;

	if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID)) {
		perror("unshare");
		return 2;
	}
	snprintf(map, sizeof(map), "0 %u 1", uid);
	if (write_file("/proc/self/setgroups", "deny") || write_file("/proc/self/uid_map", map))
		return 2;
	snprintf(map, sizeof(map), "0 %u 1", gid);
	if (write_file("/proc/self/gid_map", map))
		return 2;
	if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
		perror("making / private");
		return 2;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 2;
	}
	if (pid == 0) {
		execvp(argv[0], argv);
		perror(argv[0]);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return 2;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "nest"))
		return nest_main(argv + 2);
	if (argc >= 3 && argc <= 6 && !strcmp(argv[1], "loop")) {
		int reopen = argc == 6 && !strcmp(argv[5], "reopen");

		if (argc == 6 && !reopen) {
			fprintf(stderr, "probe loop: the fifth argument is \"reopen\" or nothing\n");
			return 2;
		}
		return loop_main(argv[2], argc >= 4 ? argv[3] : NULL, argc >= 5 ? atoi(argv[4]) : 10,
				 reopen) ||
		       fflush(stdout) != 0;
	} else if (argc >= 3 && !strcmp(argv[1], "read")) {
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
		fprintf(stderr, "usage: probe read FILE... | sysconf | touch MIB | loadavg | "
				"loop STOP [READY [MS [reopen]]] | nest CMD ARGS...\n");
		return 2;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
"##;

/// Builds C `source` as the static program `bin/NAME` (threads allowed), in `dir`.
fn build_static(dir: &TestDir, name: &str, source: &str, bin: &std::path::Path) {
    let src = dir.join(&format!("{name}.c"));
    fs::write(&src, source).unwrap_or_else(|e| panic!("writing {}: {e}", src.display()));
    let out = Command::new("gcc")
        .args(["-static", "-pthread", "-O1", "-o"])
        .arg(bin.join(name))
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("running gcc: {e}"));
    assert!(
        out.status.success(),
        "gcc -static could not build {name} (scripts/deps.sh installs gcc and libc6-dev, whose \
         libc.a static linking needs): {}",
        describe(&out)
    );
}

/// A busybox root filesystem with `/bin/probe` and `/bin/sysinfo-probe`, shared read-only by all containers of a test
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
        // `var/lib/lxcfs`: where a container binds the whole lxcfs directory.
        for d in [
            "bin",
            "dev",
            "proc",
            "sys",
            "tmp",
            "sync",
            "var/lib/lxcfs",
            "usr",
            "etc",
        ] {
            fs::create_dir_all(root.join(d))
                .unwrap_or_else(|e| panic!("creating {}/{d}: {e}", root.display()));
        }
        open_to_all(&root);
        // For host programs run with the host's /usr bound in (`Spec::host_usr`).
        for (link, to) in [("lib", "usr/lib"), ("lib64", "usr/lib64")] {
            symlink(to, root.join(link)).unwrap_or_else(|e| panic!("linking /{link}: {e}"));
        }
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
        for (name, source) in [("probe", PROBE_C), ("sysinfo-probe", SYSINFO_PROBE_C)] {
            build_static(&dir, name, source, &bin);
        }
        Rootfs { dir }
    }

    /// The root filesystem's directory.
    pub fn path(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Writes the root filesystem as a tar archive to `tar`, what `docker import` and
    /// `podman import` make an image of.
    pub fn archive(&self, tar: &Path) {
        let mut cmd = Command::new("tar");
        cmd.arg("-C").arg(self.path()).arg("-cf").arg(tar).arg(".");
        checked(cmd, &["tar", "-cf"]);
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
