//! Our daemon in namespaces of its own (a pid namespace, a cgroup namespace, a private
//! mount namespace), started through `unshare` and reached from the host through
//! `/proc/<pid>/root`. Its mount is made in its private mount namespace, so nothing is ever
//! mounted on the host: the mount goes away with the namespace when the daemon stops.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::BIN;
use super::daemon::TestDir;
use super::mounts::mountinfo_at;
use super::process::{signal, wait_timeout, wait_until};

/// Our daemon run at the end of a wrapper command that makes namespaces (`unshare ...`).
pub struct NsDaemon {
    /// The process we started: the wrapper, which may have become the daemon by `exec`.
    wrapper: Option<Child>,
    /// The daemon's pid on the host.
    pub pid: u32,
    /// The mount point as the daemon sees it.
    mnt: PathBuf,
    /// Its stdout and stderr.
    log: PathBuf,
    /// Holds the mount point and the log.
    _dir: TestDir,
}

/// Host pid -> parent pid of every process, from `/proc/<pid>/stat`.
fn parents() -> HashMap<u32, u32> {
    let mut out = HashMap::new();
    for e in fs::read_dir("/proc").expect("listing /proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // Field 4, counted after the command name, which may hold spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok());
        if let Some(ppid) = ppid {
            out.insert(pid, ppid);
        }
    }
    out
}

/// `root` and every process below it.
fn subtree(root: u32) -> Vec<u32> {
    let parents = parents();
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parents.iter().filter(|(_, pp)| **pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

impl NsDaemon {
    /// Runs `wrapper BIN ARGS MNT` (the wrapper runs its trailing arguments in the namespaces
    /// it makes), finds the daemon among the wrapper's processes, and waits up to 10 s until
    /// its mount serves `proc/meminfo`.
    pub fn start(mut wrapper: Command, args: &[&str]) -> NsDaemon {
        let dir = TestDir::new();
        let mnt = dir.join("mnt");
        fs::create_dir(&mnt).expect("creating the mount point");
        let log = dir.join("daemon.log");
        let out = File::create(&log).expect("creating the log");
        let err = out.try_clone().expect("cloning the log handle");
        let child = wrapper
            .arg(BIN)
            .args(args)
            .arg(&mnt)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {wrapper:?}: {e}"));
        let mut d = NsDaemon {
            pid: child.id(),
            wrapper: Some(child),
            mnt,
            log,
            _dir: dir,
        };
        d.wait_serving();
        d
    }

    /// Finds the daemon (the process of the wrapper's tree running our binary) and waits for
    /// its mount; panics with the log when it does not come.
    fn wait_serving(&mut self) {
        let bin = Path::new(BIN).canonicalize().expect("the binary's path");
        let root = self.pid;
        let mut found = None;
        let ok = wait_until(Duration::from_secs(10), || {
            if let Some(Ok(Some(_))) = self.wrapper.as_mut().map(Child::try_wait) {
                return true;
            }
            found = found.or_else(|| {
                subtree(root)
                    .into_iter()
                    .find(|p| fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| e == bin))
            });
            found.is_some_and(|pid| {
                let mounted = mountinfo_at(Path::new(&format!("/proc/{pid}/mountinfo")))
                    .iter()
                    .any(|m| m.mount_point == self.mnt && m.fstype == "fuse.lxcfs");
                self.pid = pid;
                mounted && fs::read(self.path("proc/meminfo")).is_ok_and(|b| !b.is_empty())
            })
        });
        if let Some(Ok(Some(st))) = self.wrapper.as_mut().map(Child::try_wait) {
            self.wrapper = None;
            panic!(
                "the daemon exited ({st}) instead of serving; its output:\n{}",
                self.log()
            );
        }
        assert!(
            ok,
            "the daemon (pid {:?}) did not serve within 10 s; its output:\n{}",
            found,
            self.log()
        );
    }

    /// `<mnt>/<rel>` as the host reaches it: through the daemon's root, which leads into its
    /// mount namespace.
    pub fn path(&self, rel: &str) -> PathBuf {
        Path::new(&format!("/proc/{}/root", self.pid))
            .join(self.mnt.strip_prefix("/").expect("absolute mount point"))
            .join(rel)
    }

    /// `<mnt>/<rel>` as a string, for a process inside the daemon's mount namespace.
    pub fn inner_arg(&self, rel: &str) -> String {
        self.mnt.join(rel).to_str().expect("utf-8 path").to_string()
    }

    /// What the daemon wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log)
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()))
    }

    /// Sends `sig` to the daemon and waits up to 5 s for the wrapper, which ends with it.
    pub fn stop(&mut self, sig: Signal) -> Option<ExitStatus> {
        let child = self.wrapper.as_mut()?;
        signal(self.pid, sig);
        let st = wait_timeout(child, Duration::from_secs(5));
        if st.is_some() {
            self.wrapper = None;
        }
        st
    }
}

impl Drop for NsDaemon {
    fn drop(&mut self) {
        if self.wrapper.is_some() && self.stop(Signal::SIGTERM).is_none() {
            eprintln!("the daemon (pid {}) ignored SIGTERM; killing it", self.pid);
            signal(self.pid, Signal::SIGKILL);
            if let Some(mut child) = self.wrapper.take() {
                // `unshare --kill-child` takes its pid namespace down with it.
                signal(child.id(), Signal::SIGKILL);
                let _ = child.wait();
            }
        }
    }
}
