//! A builder of fake host trees: a temporary directory holding `proc/...` and `sys/...` as a
//! host's `/` does, for code that reads the host through a root it is given
//! (`lxcfs-rs show --host-root DIR`, `HostPaths::under(DIR)`).
//!
//! Self-contained (only `std` and `tempfile`), so that both the integration tests
//! (`tests/common`) and the library's unit tests (through `#[path]`) can include this one file.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// A temporary directory holding `proc/...` and `sys/...` like a host's, removed on drop.
pub struct Fixture {
    /// The tree's root.
    dir: TempDir,
}

/// One fake process, as [`Fixture::process`] writes it.
pub struct Proc<'a> {
    /// Its pid on the host.
    pub pid: u32,
    /// `PPid:`, its parent's host pid (0 for the host's init).
    pub ppid: u32,
    /// NSpid, outermost first.
    pub nspid: &'a [u32],
    /// Name of its pid namespace: processes with the same name share the `ns/pid` inode.
    pub ns: &'a str,
    /// Field 3 of `stat` (`R`, `S`, `D`, `Z`, ...), also the `State:` of `status`.
    pub state: char,
    /// Field 22 of `stat`: start time in clock ticks since boot.
    pub start: u64,
}

impl Fixture {
    /// An empty tree in a new temporary directory.
    pub fn new() -> Self {
        let dir = tempfile::tempdir()
            .unwrap_or_else(|e| panic!("creating a temporary directory for a fixture tree: {e}"));
        Fixture { dir }
    }

    /// The tree's root directory (what stands for the host's `/`).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `<root>/<rel>`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `rel` (relative to the fixture root), creating its directories.
    pub fn write(&self, rel: &str, content: &str) -> &Self {
        let p = self.path(rel);
        let parent = p.parent().expect("a fixture file has a parent directory");
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
        fs::write(&p, content).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        self
    }

    /// The text of `rel` (relative to the fixture root).
    pub fn read(&self, rel: &str) -> String {
        let p = self.path(rel);
        fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
    }

    /// Removes `rel`: a file, or a directory with everything below it.
    pub fn remove(&self, rel: &str) {
        let p = self.path(rel);
        if p.is_dir() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        }
        .unwrap_or_else(|e| panic!("removing {}: {e}", p.display()));
    }

    /// Writes `proc/self/mountinfo`.
    pub fn mountinfo(&self, text: &str) -> &Self {
        self.write("proc/self/mountinfo", text)
    }

    /// Writes `proc/<pid>/cgroup`.
    pub fn cgroup(&self, pid: u32, text: &str) -> &Self {
        self.write(&format!("proc/{pid}/cgroup"), text)
    }

    /// Writes `proc/<pid>/stat` with the given state and start time (see [`stat_line`]), and
    /// the same line as the thread's own `proc/<pid>/task/<pid>/stat`.
    pub fn stat(&self, pid: u32, ppid: u32, state: char, start: u64) {
        let line = stat_line(pid, "a (b) c", state, ppid, start);
        self.write(&format!("proc/{pid}/stat"), &line);
        self.write(&format!("proc/{pid}/task/{pid}/stat"), &line);
    }

    /// Writes `proc/<pid>/status` with the given `State:`, `PPid:` and `NSpid:` (see
    /// [`status_text`]).
    pub fn status(&self, pid: u32, ppid: u32, state: char, nspid: &[u32]) {
        self.write(
            &format!("proc/{pid}/status"),
            &status_text(pid, ppid, state, nspid),
        );
    }

    /// Writes `status`, `stat` and `ns/pid` of a process.
    pub fn process(&self, p: Proc<'_>) {
        self.status(p.pid, p.ppid, p.state, p.nspid);
        self.stat(p.pid, p.ppid, p.state, p.start);
        self.link_ns(p.pid, p.ns);
    }

    /// Makes `proc/<pid>/ns/pid` a hard link to the namespace `name`'s file (`nsfs/<name>`),
    /// so that all processes of one namespace share an inode, as on a real host.
    pub fn link_ns(&self, pid: u32, name: &str) {
        let shared = self.path(&format!("nsfs/{name}"));
        if !shared.exists() {
            self.write(&format!("nsfs/{name}"), "");
        }
        let link = self.path(&format!("proc/{pid}/ns/pid"));
        let dir = link.parent().expect("ns/pid has a parent directory");
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let _ = fs::remove_file(&link);
        fs::hard_link(&shared, &link)
            .unwrap_or_else(|e| panic!("linking {} to {}: {e}", link.display(), shared.display()));
    }
}

impl Default for Fixture {
    /// [`Fixture::new`].
    fn default() -> Self {
        Fixture::new()
    }
}

/// A full `/proc/<pid>/stat` line (52 fields) with the given values: field 2 is `(comm)`,
/// field 3 the state, field 4 the parent, field 22 the start time in clock ticks.
pub fn stat_line(pid: u32, comm: &str, state: char, ppid: u32, start: u64) -> String {
    format!(
        "{pid} ({comm}) {state} {ppid} {pid} {pid} 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 {start} \
         1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
    )
}

/// A `/proc/<pid>/status` text with the given `State:` and `PPid:`, and `NSpid:` (with
/// `NStgid:` and `NSpgid:`) listing `nspid`, outermost first.
pub fn status_text(pid: u32, ppid: u32, state: char, nspid: &[u32]) -> String {
    let ns: Vec<String> = nspid.iter().map(u32::to_string).collect();
    format!(
        "Name:\tsh\nUmask:\t0022\nState:\t{state} (x)\nTgid:\t{pid}\nNgid:\t0\nPid:\t{pid}\nPPid:\t{ppid}\n\
         TracerPid:\t0\nNStgid:\t{ns}\nNSpid:\t{ns}\nNSpgid:\t{ns}\nThreads:\t1\n",
        ns = ns.join("\t"),
    )
}
