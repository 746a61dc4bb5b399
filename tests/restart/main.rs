//! Restart, upgrade and crash without one failed read in any container (docs:
//! restart.md §8). Real runc containers read the daemon's files all along with the probe's
//! `loop` mode while the test disrupts the daemon: `--takeover` upgrades between two builds,
//! SIGKILLs of the worker (some with a READ held in flight by a failpoint), a worker without
//! FUSE_NOTIFY_RESEND, a request that crashes the worker, a stopped worker, SIGUSR1 and
//! SIGUSR2, and supervisor and worker killed together with their descriptors kept in a
//! stand-in for systemd's fd store. Each test reports the failed reads by errno and the
//! longest stall, and asserts on them.
//!
//! Needs root, /dev/fuse, runc, busybox-static, gcc and CPUs 0 and 1 (skipped otherwise,
//! failing when CI is set). The failpoint tests need a debug build of the daemon.
//!
//! - [`loads`]: the three reading containers and the checks of what they report;
//! - [`supervisor`]: the supervisor's `status`, the two builds, failpoints, held reads;
//! - [`harness`]: the harness proven against the daemon as it is: checks that pass, and each
//!   check made to fail;
//! - [`upgrade`]: `--takeover` upgrades, SIGUSR1 re-execution, the SIGUSR2 toggle;
//! - [`crash`]: the worker killed, without RESEND, crashed by a request, stopped;
//! - [`systemd`]: supervisor and worker lost, the connection kept in a notify-socket fd store.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod crash;
mod harness;
mod loads;
mod supervisor;
mod systemd;
mod upgrade;

use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::container::{Barrier, Rootfs, Runc, can_run_containers, open_to_all};
use common::{DTask, TestDir, cpus_0_and_1_online, descendants_of, stuck_tasks, unique};

/// Every test here holds this: the stall bounds are about the daemon, so no other test's
/// containers and disruptions may compete for the CPUs meanwhile.
static SERIAL: Mutex<()> = Mutex::new(());

/// What every test starts from: [`SERIAL`] held, the shared root filesystem, a runc state
/// directory, a barrier, and a directory holding the mount point. Fields drop in the order
/// declared: containers made later in a test are gone before any of these.
struct Scene {
    /// For the containers' ready flags and the probes' stop file.
    barrier: Barrier,
    /// A runc state directory of the test's own.
    runc: Runc,
    /// The busybox root filesystem with the probe.
    rootfs: Arc<Rootfs>,
    /// Holds `mnt` and the daemons' logs; dropped after every daemon (declared first in
    /// each test), so it is never removed with a mount inside.
    dir: TestDir,
    /// Where the daemons mount.
    mnt: PathBuf,
    _serial: MutexGuard<'static, ()>,
}

impl Scene {
    /// The scene, or `None` (after [`common::skip`], which fails under CI) when containers
    /// cannot run here.
    fn new() -> Option<Scene> {
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
    fn log(&self, name: &str) -> PathBuf {
        self.dir.join(&format!("{name}.log"))
    }
}

/// Whether a task in D state is one the test made: a descendant of this test process
/// (daemons, their workers, runc and the containers it runs), one of `extra` (a worker whose
/// supervisor was killed has been re-parented), or in one of our containers' cgroups.
fn ours(extra: &[u32]) -> impl Fn(&DTask) -> bool {
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
fn stuck(extra: &[u32]) -> Vec<String> {
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

/// Panics with `problem` unless it is `Ok`: the checks return what is wrong, so that the
/// harness's own tests can show each of them failing.
#[track_caller]
fn must(problem: Result<(), String>) {
    if let Err(e) = problem {
        panic!("{e}");
    }
}

/// `CLOCK_MONOTONIC` in ms: the clock of the probes' event times.
fn monotonic_ms() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("clock_gettime(CLOCK_MONOTONIC)");
    t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000
}

/// Between two disruptions: long enough for every probe to read a few rounds, short enough
/// to keep 20 disruptions quick.
const PAUSE: Duration = Duration::from_millis(250);
