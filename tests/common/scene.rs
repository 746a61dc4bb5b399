//! What a test with reading containers starts from ([`Scene`]), and the checks every such
//! test shares: tasks of ours stuck in D state, problems turned into one panic, the probes'
//! clock.

use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::container::{Barrier, Rootfs, Runc, can_run_containers, open_to_all};
use super::{DTask, TestDir, cpus_0_and_1_online, descendants_of, stuck_tasks, unique};

/// Every scene of a test binary holds this: stall bounds and recovery times are about the
/// daemon, so no other test's containers and disruptions may compete for the CPUs meanwhile.
static SERIAL: Mutex<()> = Mutex::new(());

/// What every test with reading containers starts from: [`SERIAL`] held, the shared root
/// filesystem, a runc state directory, a barrier, and a directory holding the mount point.
/// Fields drop in the order declared: containers made later in a test are gone before any of
/// these.
pub struct Scene {
    /// For the containers' ready flags and the probes' stop file.
    pub barrier: Barrier,
    /// A runc state directory of the test's own.
    pub runc: Runc,
    /// The busybox root filesystem with the probe.
    pub rootfs: Arc<Rootfs>,
    /// Holds `mnt` and the daemons' logs; dropped after every daemon (declared first in
    /// each test), so it is never removed with a mount inside.
    pub dir: TestDir,
    /// Where the daemons mount.
    pub mnt: PathBuf,
    _serial: MutexGuard<'static, ()>,
}

impl Scene {
    /// The scene, or `None` (after [`super::skip`], which fails under CI) when containers
    /// cannot run here or CPUs 0 and 1 are not both online.
    pub fn new() -> Option<Scene> {
        if !can_run_containers() || !cpus_0_and_1_online() {
            return None;
        }
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = TestDir::new();
        // The user-namespaced container's root (host uid 100000) resolves the bind sources.
        open_to_all(dir.path());
        let mnt = dir.join("mnt");
        fs::create_dir(&mnt).expect("creating the mount point");
        Some(Scene {
            barrier: Barrier::new(),
            runc: Runc::new(),
            rootfs: Rootfs::shared(),
            dir,
            mnt,
            _serial,
        })
    }

    /// A path for a daemon's log in the scene's directory.
    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.join(&format!("{name}.log"))
    }

    /// Another mount point `name` in the scene's directory (for a second daemon), created.
    pub fn other_mount_point(&self, name: &str) -> PathBuf {
        let mnt = self.dir.join(name);
        fs::create_dir(&mnt).unwrap_or_else(|e| panic!("creating {}: {e}", mnt.display()));
        mnt
    }
}

/// Whether a task in D state is one the test made: a descendant of this test process
/// (daemons, their workers, runc and the containers it runs), one of `extra` (a worker whose
/// supervisor was killed has been re-parented), or in one of our containers' cgroups.
pub fn ours(extra: &[u32]) -> impl Fn(&DTask) -> bool {
    let family = descendants_of(std::process::id());
    // Container ids (and so cgroups) are `unique("lxcfs-rs-ct")`: this prefix is ours.
    let cgroup_prefix = unique("lxcfs-rs-ct")
        .rsplit_once('-')
        .map(|(p, _)| format!("{p}-"))
        .expect("a unique name");
    let extra = extra.to_vec();
    move |t: &DTask| {
        family.contains(&t.pid) || extra.contains(&t.pid) || t.cgroup.contains(&cgroup_prefix)
    }
}

/// Tasks of ours in D state for 300 ms or more, as messages (empty when none).
pub fn stuck(extra: &[u32]) -> Vec<String> {
    stuck_tasks(Duration::from_millis(300), ours(extra))
        .into_iter()
        .map(|t| {
            format!(
                "pid {} tid {} ({}) in D at {} (parent {}, cgroup {})",
                t.pid, t.tid, t.comm, t.wchan, t.ppid, t.cgroup
            )
        })
        .collect()
}

/// Panics with `problem` unless it is `Ok`: the checks return what is wrong, so that a
/// harness's own tests can show each of them failing.
#[track_caller]
pub fn must(problem: Result<(), String>) {
    if let Err(e) = problem {
        panic!("{e}");
    }
}

/// `Ok` when `bad` is empty, else `what` with one indented line per problem.
pub fn problems(what: &str, bad: Vec<String>) -> Result<(), String> {
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("{what}:\n  {}", bad.join("\n  ")))
    }
}

/// `CLOCK_MONOTONIC` in ms: the clock of the probes' event times (runc makes no time
/// namespace, so the containers share it).
pub fn monotonic_ms() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("clock_gettime(CLOCK_MONOTONIC)");
    t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000
}
