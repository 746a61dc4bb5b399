//! A builder for fake host trees, shared by the cgroup and reader tests.

use std::fs;
use std::path::PathBuf;

use tempfile::TempDir;

use crate::host::HostPaths;

/// A temporary directory holding `proc/...` and `sys/...` like a host's.
pub(crate) struct Fixture {
    dir: TempDir,
    /// Paths pointing into the fixture.
    pub(crate) host: HostPaths,
}

/// One fake process.
pub(crate) struct Proc<'a> {
    pub(crate) pid: u32,
    pub(crate) ppid: u32,
    /// NSpid, outermost first.
    pub(crate) nspid: &'a [u32],
    /// Name of its pid namespace: processes with the same name share the `ns/pid` inode.
    pub(crate) ns: &'a str,
    pub(crate) state: char,
    pub(crate) start: u64,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let host = HostPaths::under(dir.path());
        Fixture { dir, host }
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `rel` (relative to the fixture root), creating its directories.
    pub(crate) fn write(&self, rel: &str, content: &str) -> &Self {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
        self
    }

    pub(crate) fn remove(&self, rel: &str) {
        let p = self.path(rel);
        if p.is_dir() {
            fs::remove_dir_all(p)
        } else {
            fs::remove_file(p)
        }
        .unwrap();
    }

    /// Writes `proc/self/mountinfo`.
    pub(crate) fn mountinfo(&self, text: &str) -> &Self {
        self.write("proc/self/mountinfo", text)
    }

    /// Writes `proc/<pid>/cgroup`.
    pub(crate) fn cgroup(&self, pid: u32, text: &str) -> &Self {
        self.write(&format!("proc/{pid}/cgroup"), text)
    }

    /// Writes `proc/<pid>/stat` with the given state and start time.
    pub(crate) fn stat(&self, pid: u32, ppid: u32, state: char, start: u64) {
        self.write(
            &format!("proc/{pid}/stat"),
            &stat_line(pid, "a (b) c", state, ppid, start),
        );
    }

    /// Writes `status`, `stat` and `ns/pid` of a process.
    pub(crate) fn process(&self, p: Proc<'_>) {
        let nspid: Vec<String> = p.nspid.iter().map(u32::to_string).collect();
        let status = format!(
            "Name:\tsh\nUmask:\t0022\nState:\t{} (x)\nTgid:\t{pid}\nNgid:\t0\nPid:\t{pid}\nPPid:\t{}\n\
             TracerPid:\t0\nNStgid:\t{ns}\nNSpid:\t{ns}\nNSpgid:\t{ns}\nThreads:\t1\n",
            p.state,
            p.ppid,
            pid = p.pid,
            ns = nspid.join("\t"),
        );
        self.write(&format!("proc/{}/status", p.pid), &status);
        self.stat(p.pid, p.ppid, p.state, p.start);
        self.link_ns(p.pid, p.ns);
    }

    /// Makes `proc/<pid>/ns/pid` a hard link to the namespace `name`'s file, so that all
    /// processes of one namespace share an inode, as on a real host.
    pub(crate) fn link_ns(&self, pid: u32, name: &str) {
        let shared = self.path(&format!("nsfs/{name}"));
        if !shared.exists() {
            fs::create_dir_all(shared.parent().unwrap()).unwrap();
            fs::write(&shared, "").unwrap();
        }
        let link = self.path(&format!("proc/{pid}/ns/pid"));
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        let _ = fs::remove_file(&link);
        fs::hard_link(&shared, &link).unwrap();
    }
}

/// A full `/proc/<pid>/stat` line (52 fields) with the given values.
pub(crate) fn stat_line(pid: u32, comm: &str, state: char, ppid: u32, start: u64) -> String {
    format!(
        "{pid} ({comm}) {state} {ppid} {pid} {pid} 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 {start} \
         1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
    )
}
