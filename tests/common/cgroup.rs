//! Cgroup v1 directories with limits, and readers started inside them.

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
