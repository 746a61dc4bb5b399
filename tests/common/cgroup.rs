//! Cgroup v1 directories with limits, and readers started inside them: reading files with the
//! cgroup's counters read just before and after ([`Cgroup::read_bracketed`]), burning CPU, and
//! memory [`Ballast`] charged from inside. A cgroup in the unified hierarchy of a hybrid host
//! ([`UnifiedCgroup`]).

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::CONTROLLERS;
use super::daemon::unique;
use super::mounts::{mountinfo, v1_mounts};
use super::parse::{Around, Counters, key_values, start_ticks};
use super::process::{checked, signal, wait_until};

/// Joins every cgroup listed in `$CG_PROCS`, then execs the command.
const JOIN: &str = r#"for p in $CG_PROCS; do echo $$ > "$p" || exit 97; done; exec "$@""#;

/// A cgroup with the same relative path in each v1 hierarchy of [`CONTROLLERS`].
pub struct Cgroup {
    /// Directory per controller (co-mounted controllers share one).
    dirs: BTreeMap<String, PathBuf>,
    /// Processes started in it, killed and reaped on drop.
    started: Mutex<Vec<Child>>,
}

fn write_file(path: &Path, value: &str) {
    fs::write(path, value)
        .unwrap_or_else(|e| panic!("writing {value:?} to {}: {e}", path.display()));
}

fn read_trim(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_string()
}

impl Cgroup {
    /// A new top-level cgroup `lxcfs-rs-test-<pid>-<n>` in every controller, no limits,
    /// cpuset = the root's cpus and mems.
    pub fn new() -> Cgroup {
        let mounts = v1_mounts();
        let name = unique("lxcfs-rs-test");
        let mut dirs = BTreeMap::new();
        for c in CONTROLLERS {
            let mount = mounts
                .get(*c)
                .unwrap_or_else(|| panic!("no v1 {c} hierarchy mounted"));
            dirs.insert(c.to_string(), mount.join(&name));
        }
        Cgroup::create(dirs)
    }

    /// A child cgroup `name` below this one (declare it after the parent, so it is dropped
    /// first; the parent's drop also removes leftovers).
    pub fn child(&self, name: &str) -> Cgroup {
        let dirs = self
            .dirs
            .iter()
            .map(|(c, d)| (c.clone(), d.join(name)))
            .collect();
        Cgroup::create(dirs)
    }

    fn create(dirs: BTreeMap<String, PathBuf>) -> Cgroup {
        let cg = Cgroup {
            dirs,
            started: Mutex::new(Vec::new()),
        };
        for dir in cg.unique_dirs() {
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => panic!("creating cgroup {}: {e}", dir.display()),
            }
        }
        // A v1 cpuset cgroup takes no task until it has cpus and mems: inherit the parent's.
        let cs = cg.dir("cpuset").to_path_buf();
        let parent = cs.parent().expect("cpuset parent");
        write_file(
            &cs.join("cpuset.mems"),
            &read_trim(&parent.join("cpuset.mems")),
        );
        write_file(
            &cs.join("cpuset.cpus"),
            &read_trim(&parent.join("cpuset.cpus")),
        );
        cg
    }

    fn unique_dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.dirs.values().cloned().collect();
        v.sort();
        v.dedup();
        v
    }

    /// The directory of `controller`.
    pub fn dir(&self, controller: &str) -> &Path {
        self.dirs
            .get(controller)
            .unwrap_or_else(|| panic!("no {controller} dir"))
    }

    /// Sets `memory.limit_in_bytes`.
    pub fn set_memory_limit(&self, bytes: u64) -> &Self {
        write_file(
            &self.dir("memory").join("memory.limit_in_bytes"),
            &bytes.to_string(),
        );
        self
    }

    /// Sets `memory.memsw.limit_in_bytes`, memory + swap. The kernel refuses a memsw limit
    /// below the memory limit, so set the memory limit first.
    pub fn set_memsw_limit(&self, bytes: u64) -> &Self {
        write_file(
            &self.dir("memory").join("memory.memsw.limit_in_bytes"),
            &bytes.to_string(),
        );
        self
    }

    /// Whether the kernel accounts swap per cgroup (the v1 `memory.memsw.*` files exist only
    /// with swap accounting on: `swapaccount=1`, the default of most kernels).
    pub fn has_memsw(&self) -> bool {
        self.dir("memory")
            .join("memory.memsw.limit_in_bytes")
            .exists()
    }

    /// Sets `cpuset.cpus` (mems were copied from the parent at creation).
    pub fn set_cpus(&self, cpus: &str) -> &Self {
        write_file(&self.dir("cpuset").join("cpuset.cpus"), cpus);
        self
    }

    /// Sets `cpu.cfs_period_us` and `cpu.cfs_quota_us`.
    pub fn set_quota(&self, quota: i64, period: u64) -> &Self {
        let d = self.dir("cpu");
        write_file(&d.join("cpu.cfs_period_us"), &period.to_string());
        write_file(&d.join("cpu.cfs_quota_us"), &quota.to_string());
        self
    }

    /// Reads a file of this cgroup's `controller` directory.
    pub fn read_file(&self, controller: &str, name: &str) -> String {
        let p = self.dir(controller).join(name);
        fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
    }

    /// The `cgroup.procs` files, space separated, for [`JOIN`].
    pub fn procs_files(&self) -> String {
        self.unique_dirs()
            .iter()
            .map(|d| d.join("cgroup.procs").to_str().expect("utf-8").to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A command that joins this cgroup in every controller, then execs `argv`.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", JOIN, "sh"])
            .args(argv)
            .env("CG_PROCS", self.procs_files())
            .stdin(Stdio::null());
        cmd
    }

    /// A command that joins this cgroup, then runs `argv` as the init of a new pid namespace
    /// (with its own /proc), as a container would.
    pub fn command_in_pidns(&self, argv: &[&str]) -> Command {
        let mut full = vec!["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"];
        full.extend_from_slice(argv);
        self.command(&full)
    }

    /// Runs `argv` in the cgroup; panics (with its output) unless it exits 0.
    pub fn run(&self, argv: &[&str]) -> String {
        checked(self.command(argv), argv)
    }

    /// Runs `argv` in the cgroup as init of a new pid namespace; panics unless it exits 0.
    pub fn run_in_pidns(&self, argv: &[&str]) -> String {
        checked(self.command_in_pidns(argv), argv)
    }

    /// What a reader in this cgroup reads from `path` (`cat`, so read(2)).
    pub fn read(&self, path: &Path) -> String {
        self.run(&["cat", path.to_str().expect("utf-8 path")])
    }

    /// Starts `argv` in the cgroup in the background, waits until it has joined (its pid is
    /// in the memory hierarchy's `cgroup.procs`) and returns its pid. Killed on drop.
    pub fn spawn(&self, argv: &[&str]) -> u32 {
        let child = self
            .command(argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {argv:?}: {e}"));
        let pid = child.id();
        self.started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
        let procs = self.dir("memory").join("cgroup.procs");
        let pids = self.unique_dirs();
        let joined = wait_until(Duration::from_secs(5), || {
            pids.iter().all(|d| {
                fs::read_to_string(d.join("cgroup.procs"))
                    .is_ok_and(|t| t.lines().any(|l| l.trim() == pid.to_string()))
            })
        });
        assert!(
            joined,
            "{argv:?} (pid {pid}) did not join the cgroup within 5 s ({})",
            procs.display()
        );
        pid
    }

    /// Pids in this cgroup (memory hierarchy), for cleanup.
    fn member_pids(dir: &Path) -> Vec<i32> {
        fs::read_to_string(dir.join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Every directory of the subtree below `dir`, deepest first.
    fn subtree(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    Cgroup::subtree(&e.path(), out);
                }
            }
        }
        out.push(dir.to_path_buf());
    }
}

impl Default for Cgroup {
    fn default() -> Self {
        Cgroup::new()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let mut started =
            std::mem::take(&mut *self.started.lock().unwrap_or_else(|e| e.into_inner()));
        for child in &mut started {
            signal(child.id(), Signal::SIGKILL);
            let _ = child.wait();
        }
        let mut dirs = Vec::new();
        for d in self.unique_dirs() {
            Cgroup::subtree(&d, &mut dirs);
        }
        // Only our own tests put processes in these uniquely named cgroups; anything still
        // there is a descendant of a process we started (e.g. the init of an unshared pid
        // namespace): kill it by pid so the directories can go.
        for d in &dirs {
            for pid in Cgroup::member_pids(d) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        for d in &dirs {
            let ok = wait_until(Duration::from_secs(3), || match fs::remove_dir(d) {
                Ok(()) => true,
                Err(e) if e.kind() == ErrorKind::NotFound => true,
                Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => false,
                Err(_) => true,
            });
            if !ok {
                eprintln!(
                    "warning: could not remove cgroup {} (still busy)",
                    d.display()
                );
            }
        }
    }
}

/// Removes the cgroup `name` (a top-level directory) and everything below it from every
/// cgroup hierarchy, deepest first: runtimes such as podman (conmon's cgroup) and LXC (its
/// pivot cgroup) leave directories below the parent they were given. Waits a little for
/// cgroups whose last process is still exiting.
pub fn remove_cgroup_tree(name: &str) {
    fn dirs_below(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs_below(&e.path(), out);
                }
            }
        }
        out.push(dir.to_path_buf());
    }
    for m in mountinfo() {
        if m.fstype != "cgroup" && m.fstype != "cgroup2" {
            continue;
        }
        let top = m.mount_point.join(name);
        if !top.exists() {
            continue;
        }
        let mut dirs = Vec::new();
        dirs_below(&top, &mut dirs);
        for d in dirs {
            let gone = wait_until(Duration::from_secs(3), || match fs::remove_dir(&d) {
                Ok(()) => true,
                Err(e) => e.raw_os_error() != Some(nix::libc::EBUSY),
            });
            if !gone {
                eprintln!("warning: could not remove cgroup {} (busy)", d.display());
            }
        }
    }
}

/// What one reader in a cgroup read, with the counters it is made of read by the same reader
/// just before and just after ([`Cgroup::read_bracketed`]).
pub struct Bracketed {
    /// The text of each path read, in order.
    pub texts: Vec<String>,
    /// The cgroup's and the host's counters around the reads.
    pub around: Around,
    /// The texts of [`Counters::FILES`] read before, as they were.
    pub raw_before: Vec<String>,
    /// Start time (clock ticks since boot) of the shell that read: with `pidns`, the init of
    /// the reader's pid namespace, whose age is a namespaced reader's uptime.
    pub start_ticks: u64,
}

impl Cgroup {
    /// Runs the shell commands `setup` in the cgroup, then reads the files of
    /// [`Counters::FILES`], each of `paths` and the counter files again, all from one shell
    /// (with `pidns`, the init of a new pid namespace with its own /proc, as in a container:
    /// lxcfs takes the cgroup of that init, and the uptime's age counts from its start).
    pub fn read_bracketed(&self, setup: &str, paths: &[String], pidns: bool) -> Bracketed {
        let counters: Vec<String> = Counters::FILES
            .iter()
            .map(|f| match f.split_once('/') {
                Some((controller, name)) if !controller.is_empty() => self
                    .dir(controller)
                    .join(name)
                    .to_str()
                    .expect("utf-8")
                    .into(),
                _ => f.to_string(),
            })
            .collect();
        let mut args = counters.clone();
        args.extend(paths.iter().cloned());
        args.extend(counters);
        let setup = if setup.trim().is_empty() { ":" } else { setup };
        // NUL after each file, so contents without a final newline still split cleanly.
        let script = format!(
            "if ! {{ {setup}\n}}; then echo 'the setup failed' >&2; exit 98; fi\n\
             for f in \"$@\"; do cat \"$f\" || exit 1; printf '\\0'; done\n\
             exec cat /proc/$$/stat"
        );
        let mut argv: Vec<&str> = vec!["sh", "-c", &script, "sh"];
        argv.extend(args.iter().map(String::as_str));
        let out = if pidns {
            self.run_in_pidns(&argv)
        } else {
            self.run(&argv)
        };
        let parts: Vec<String> = out.split('\0').map(str::to_string).collect();
        let n = Counters::FILES.len();
        assert_eq!(
            parts.len(),
            2 * n + paths.len() + 1,
            "expected {} NUL-separated files and the reader's stat, read:\n{out}",
            2 * n + paths.len()
        );
        let after = n + paths.len();
        Bracketed {
            texts: parts[n..after].to_vec(),
            around: Around {
                before: Counters::parse(&parts[..n]),
                after: Counters::parse(&parts[after..after + n]),
            },
            raw_before: parts[..n].to_vec(),
            start_ticks: start_ticks(&parts[after + n]),
        }
    }

    /// Shell commands that keep `loops` busy loops running in the cgroup until its CPU time
    /// (`cpuacct.usage`) reaches `ns`, for at most 60 s.
    pub fn burn_script(&self, ns: u64, loops: usize) -> String {
        let usage = self.dir("cpuacct").join("cpuacct.usage");
        let usage = usage.to_str().expect("utf-8 path");
        let one = format!(
            "timeout 60 sh -c 'while read u < \"$1\" && [ \"$u\" -lt {ns} ]; do :; done' sh '{usage}' &"
        );
        format!("{} wait", one.repeat(loops))
    }

    /// Runs `argv` in the cgroup and in the unified cgroup `unified` too; panics unless it
    /// exits 0.
    pub fn run_also_in(&self, unified: &UnifiedCgroup, argv: &[&str]) -> String {
        let mut cmd = self.command(argv);
        cmd.env(
            "CG_PROCS",
            format!("{} {}", self.procs_files(), unified.procs_file()),
        );
        checked(cmd, argv)
    }
}

/// MiB of shmem (a file in /dev/shm) the [`Ballast`] charges.
pub const BALLAST_SHMEM_MIB: u64 = 16;
/// MiB of page cache on the file LRU lists (a regular file written and read back).
pub const BALLAST_FILE_MIB: u64 = 32;
/// MiB of a regular file kept mapped by a process in the cgroup (also on the file LRU lists).
pub const BALLAST_MAPPED_MIB: u64 = 8;

/// Maps a file, touches every page and keeps the mapping until killed.
const MAPPER_C: &str = r#"#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
int main(int argc, char **argv) {
    struct stat st;
    int fd = argc == 2 ? open(argv[1], O_RDONLY) : -1;
    if (fd < 0 || fstat(fd, &st) < 0) { perror("open"); return 1; }
    volatile const char *p = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 1; }
    unsigned long sum = 0;
    for (off_t i = 0; i < st.st_size; i += 4096) sum += p[i];
    printf("%lu\n", sum);
    fflush(stdout);
    for (;;) pause();
}
"#;

/// Memory charged to a cgroup from inside it, so that every meminfo line made from
/// `memory.stat` has MiBs to show: a tmpfs file (shmem, also in the page cache), a regular
/// file written and read back (page cache) and a regular file kept mapped by a process in the
/// cgroup (mapped file pages). In an empty cgroup all of these are 0, and a line read from
/// the wrong key would pass. The files go on drop; the mapping process belongs to the cgroup
/// and goes with it. Needs gcc, which builds the mapping process.
pub struct Ballast {
    shm: PathBuf,
    dir: tempfile::TempDir,
}

impl Ballast {
    /// Charges `cg`; returns once its `memory.stat` shows the mapped file.
    pub fn charge(cg: &Cgroup) -> Ballast {
        // The page cache must be a disk's, not tmpfs: the target directory is on one.
        let dir = tempfile::Builder::new()
            .prefix("lxcfs-rs-ballast-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("creating the ballast directory");
        let ballast = Ballast {
            shm: Path::new("/dev/shm").join(unique("lxcfs-rs-test-shm")),
            dir,
        };
        let path = |name: &str| {
            let p = ballast.dir.path().join(name);
            p.to_str().expect("utf-8 path").to_string()
        };
        let (src, mapper, file, mapped) = (
            path("mapper.c"),
            path("mapper"),
            path("file"),
            path("mapped"),
        );
        fs::write(&src, MAPPER_C).expect("writing the mapper's source");
        let gcc = ["gcc", "-O2", "-o", &mapper, &src];
        let mut cmd = Command::new(gcc[0]);
        cmd.args(&gcc[1..]);
        checked(cmd, &gcc);
        let shm = ballast.shm.to_str().expect("utf-8 path");
        let fill = "dd if=/dev/zero of=\"$1\" bs=1M count=$2 status=none && \
                    dd if=/dev/zero of=\"$3\" bs=1M count=$4 status=none && \
                    cat \"$3\" > /dev/null && \
                    dd if=/dev/zero of=\"$5\" bs=1M count=$6 status=none";
        cg.run(&[
            "sh",
            "-c",
            fill,
            "sh",
            shm,
            &BALLAST_SHMEM_MIB.to_string(),
            &file,
            &BALLAST_FILE_MIB.to_string(),
            &mapped,
            &BALLAST_MAPPED_MIB.to_string(),
        ]);
        cg.spawn(&[&mapper, &mapped]);
        let mapped_bytes = || {
            key_values(&cg.read_file("memory", "memory.stat"))
                .get("total_mapped_file")
                .copied()
                .unwrap_or(0)
        };
        assert!(
            wait_until(Duration::from_secs(10), || mapped_bytes()
                >= BALLAST_MAPPED_MIB * super::MIB),
            "the mapper did not map {BALLAST_MAPPED_MIB} MiB within 10 s; memory.stat:\n{}",
            cg.read_file("memory", "memory.stat")
        );
        ballast
    }

    /// Asserts that the counters read before and after a read hold the ballast: at least its
    /// MiBs in each `memory.stat` key a meminfo line is made of.
    #[track_caller]
    pub fn assert_held(around: &Around) {
        let kb = |mib: u64| mib * 1024;
        let span = |key: &str| around.stat_kb(key).unwrap_or_else(|e| panic!("{e}"));
        let lru = span("total_active_file").plus(span("total_inactive_file"));
        for (what, got, want) in [
            ("total_shmem", span("total_shmem"), kb(BALLAST_SHMEM_MIB)),
            (
                "total_cache",
                span("total_cache"),
                kb(BALLAST_SHMEM_MIB + BALLAST_FILE_MIB + BALLAST_MAPPED_MIB),
            ),
            (
                "total_mapped_file",
                span("total_mapped_file"),
                kb(BALLAST_MAPPED_MIB),
            ),
            (
                "total_active_file + total_inactive_file",
                lru,
                kb(BALLAST_FILE_MIB + BALLAST_MAPPED_MIB),
            ),
        ] {
            assert!(
                got.lo >= want,
                "memory.stat {what} should hold the ballast's {want} kB, read {got} kB \
                 (is the target directory on tmpfs?); memory.stat before:\n{:?}",
                around.before.memory_stat
            );
        }
    }
}

impl Drop for Ballast {
    fn drop(&mut self) {
        // The directory goes with its TempDir.
        let _ = fs::remove_file(&self.shm);
    }
}

/// A top-level cgroup in the unified (v2) hierarchy of a hybrid host: where a reader's `0::`
/// line points, beside its v1 cgroups. Removed on drop.
pub struct UnifiedCgroup {
    dir: PathBuf,
}

impl UnifiedCgroup {
    /// A new cgroup in the host's cgroup2 mount; `None` when there is none (a pure v1 host).
    pub fn new() -> Option<UnifiedCgroup> {
        let mount = mountinfo()
            .into_iter()
            .find(|m| m.fstype == "cgroup2" && m.root == "/")?;
        let dir = mount.mount_point.join(unique("lxcfs-rs-test"));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("creating cgroup {}: {e}", dir.display()));
        Some(UnifiedCgroup { dir })
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its `cgroup.procs`, for [`Cgroup::run_also_in`].
    pub fn procs_file(&self) -> String {
        self.dir
            .join("cgroup.procs")
            .to_str()
            .expect("utf-8 path")
            .to_string()
    }
}

impl Drop for UnifiedCgroup {
    fn drop(&mut self) {
        // Only processes the tests started ever join it; kill any left by pid.
        for pid in Cgroup::member_pids(&self.dir) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let gone = wait_until(Duration::from_secs(3), || match fs::remove_dir(&self.dir) {
            Ok(()) => true,
            Err(e) => e.raw_os_error() != Some(nix::libc::EBUSY),
        });
        if !gone {
            eprintln!(
                "warning: could not remove cgroup {} (busy)",
                self.dir.display()
            );
        }
    }
}
