//! Per-cgroup load averages, sampled only for cgroups someone reads
//! (`docs/semantics.md#proc-loadavg`).
//!
//! lxcfs walks every cgroup on the host every 5 s; here a cgroup is sampled from the moment
//! a reader asks for its loadavg until nobody has asked for [`FORGET_AFTER`], so the cost
//! follows what is read, not how many containers exist.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::cgroup::count_tasks;
use crate::host::HostPaths;
use crate::model::LoadAvg;

/// The kernel's sampling interval for load averages.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// How long a cgroup is sampled after its loadavg was last read.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);

/// Where the tracker's seconds come from: the monotonic clock, or in unit tests a clock the
/// test moves by hand, so that forgetting after ten minutes is tested without waiting.
enum Clock {
    /// Seconds elapsed since this instant.
    Since(Instant),
    /// Seconds set by a test.
    #[cfg(test)]
    Manual(AtomicU64),
}

impl Clock {
    fn now_secs(&self) -> u64 {
        match self {
            Clock::Since(start) => start.elapsed().as_secs(),
            #[cfg(test)]
            Clock::Manual(secs) => secs.load(Ordering::Relaxed),
        }
    }
}

struct Tracked {
    load: Mutex<LoadAvg>,
    /// Seconds since the tracker started, at the last read.
    last_read: AtomicU64,
}

/// Load averages of the cgroups being read.
pub struct LoadTracker {
    host: HostPaths,
    clock: Clock,
    tracked: RwLock<HashMap<PathBuf, Arc<Tracked>>>,
}

impl LoadTracker {
    /// A tracker with its sampling thread; the thread ends when the tracker is dropped.
    pub fn start(host: HostPaths) -> Arc<LoadTracker> {
        let tracker = Arc::new(LoadTracker::new(host, Clock::Since(Instant::now())));
        let weak: Weak<LoadTracker> = Arc::downgrade(&tracker);
        let spawned = std::thread::Builder::new()
            .name("loadavg".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(SAMPLE_EVERY);
                    match weak.upgrade() {
                        Some(tracker) => tracker.sample_all(),
                        None => return,
                    }
                }
            });
        if let Err(e) = spawned {
            log::error!(
                "cannot start the loadavg sampler, load averages will stay at their first sample: {e}"
            );
        }
        tracker
    }

    /// A tracker without its sampling thread: [`LoadTracker::start`] adds the thread, unit
    /// tests call [`LoadTracker::sample_all`] themselves.
    fn new(host: HostPaths, clock: Clock) -> LoadTracker {
        LoadTracker {
            host,
            clock,
            tracked: RwLock::new(HashMap::new()),
        }
    }

    fn now_secs(&self) -> u64 {
        self.clock.now_secs()
    }

    /// The load average of cgroup directory `dir`, starting to track it on first use with
    /// one sample of `active` (its running + blocked tasks now, which the caller has just
    /// counted), as the kernel's own counters start from zero.
    pub fn load(&self, dir: &Path, active: u64) -> LoadAvg {
        let now = self.now_secs();
        if let Some(t) = self.tracked.read().get(dir) {
            t.last_read.store(now, Ordering::Relaxed);
            return *t.load.lock();
        }
        let mut load = LoadAvg::default();
        load.sample(active);
        let entry = Arc::new(Tracked {
            load: Mutex::new(load),
            last_read: AtomicU64::new(now),
        });
        let entry = self
            .tracked
            .write()
            .entry(dir.to_path_buf())
            .or_insert(entry)
            .clone();
        *entry.load.lock()
    }

    /// Takes one sample of every tracked cgroup and forgets those nobody reads any more
    /// or that no longer exist.
    fn sample_all(&self) {
        let now = self.now_secs();
        self.tracked.write().retain(|dir, t| {
            now.saturating_sub(t.last_read.load(Ordering::Relaxed)) < FORGET_AFTER.as_secs()
                && dir.is_dir()
        });
        let entries: Vec<(PathBuf, Arc<Tracked>)> = self
            .tracked
            .read()
            .iter()
            .map(|(d, t)| (d.clone(), t.clone()))
            .collect();
        for (dir, t) in entries {
            let (tasks, _) = count_tasks(&self.host, &dir);
            t.load.lock().sample(tasks.running + tasks.blocked);
        }
    }

    /// How many cgroups are being sampled.
    pub fn tracked(&self) -> usize {
        self.tracked.read().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Fixture;

    // The kernel's `avenrun` (1, 5, 15 minutes) after one 5-second tick per number of active
    // tasks listed, worked out by hand from `calc_load` in `kernel/sched/loadavg.c`
    // (`FIXED_1` 2048, decay factors 1884, 2014, 2037, rounding up while the load rises).
    /// Ticks of 3.
    const AFTER_3: [u64; 3] = [492, 102, 33];
    /// Ticks of 3, 3, 2.
    const AFTER_3_3_2: [u64; 3] = [1198, 268, 88];
    /// Ticks of 2.
    const AFTER_2: [u64; 3] = [328, 68, 22];
    /// Ticks of 2, 2.
    const AFTER_2_2: [u64; 3] = [630, 135, 44];
    /// Ticks of 1.
    const AFTER_1: [u64; 3] = [164, 34, 11];
    /// Ticks of 1, 1.
    const AFTER_1_1: [u64; 3] = [315, 68, 22];
    /// Ticks of 1, 1, 1.
    const AFTER_1_1_1: [u64; 3] = [454, 101, 33];

    /// A tracker on the fixture host with a clock the test sets and no sampling thread:
    /// the test calls `sample_all` for each tick.
    fn tracker(fx: &Fixture) -> LoadTracker {
        LoadTracker::new(fx.host.clone(), Clock::Manual(AtomicU64::new(0)))
    }

    impl LoadTracker {
        /// Sets the test clock to `secs` since the tracker started.
        fn set_clock(&self, secs: u64) {
            let Clock::Manual(now) = &self.clock else {
                panic!("set_clock on a tracker with the real clock")
            };
            now.store(secs, Ordering::Relaxed);
        }
    }

    #[test]
    fn each_tick_samples_every_tracked_cgroup_with_its_running_and_blocked_tasks() {
        let fx = Fixture::new();
        let busy = fx.cpu_cgroup_with_tasks("busy", &[(10, 'R'), (11, 'R'), (12, 'D'), (13, 'S')]);
        let idle = fx.cpu_cgroup_with_tasks("idle", &[(20, 'S'), (21, 'Z'), (22, 'I')]);
        let t = tracker(&fx);
        // The first read folds in the count its caller has just made.
        assert_eq!(t.load(&busy, 3).avenrun, AFTER_3);
        assert_eq!(t.load(&idle, 0).avenrun, [0; 3]);
        assert_eq!(t.tracked(), 2, "one entry per cgroup read");

        t.sample_all();
        // The blocked task sleeps now: the next tick counts only the two running ones.
        fx.stat(12, 1, 'S', 112);
        t.sample_all();
        // Later reads neither sample nor use their caller's count.
        assert_eq!(t.load(&busy, 100).avenrun, AFTER_3_3_2);
        assert_eq!(t.load(&busy, 100).avenrun, AFTER_3_3_2);
        assert_eq!(
            t.load(&idle, 7).avenrun,
            [0; 3],
            "S, Z and I tasks are no load"
        );
        assert_eq!(t.tracked(), 2, "reading again adds no entry");
    }

    #[test]
    fn a_cgroup_read_between_ticks_is_sampled_from_the_next_tick_on() {
        let fx = Fixture::new();
        let early = fx.cpu_cgroup_with_tasks("early", &[(10, 'R'), (11, 'R')]);
        let late = fx.cpu_cgroup_with_tasks("late", &[(20, 'R'), (21, 'R')]);
        let t = tracker(&fx);
        assert_eq!(t.load(&early, 2).avenrun, AFTER_2);
        t.sample_all();
        assert_eq!(
            t.load(&late, 2).avenrun,
            AFTER_2,
            "its own first sample only"
        );
        assert_eq!(t.load(&early, 2).avenrun, AFTER_2_2);
    }

    #[test]
    fn a_cgroup_nobody_reads_for_ten_minutes_is_forgotten() {
        let fx = Fixture::new();
        let kept = fx.cpu_cgroup_with_tasks("kept", &[(10, 'R')]);
        let dropped = fx.cpu_cgroup_with_tasks("dropped", &[(20, 'R')]);
        let t = tracker(&fx);
        t.load(&kept, 1);
        t.load(&dropped, 1);
        let last_second = FORGET_AFTER.as_secs() - 1;
        t.set_clock(last_second);
        t.load(&kept, 1);
        t.sample_all();
        assert_eq!(t.tracked(), 2, "both were read less than ten minutes ago");

        t.set_clock(FORGET_AFTER.as_secs());
        t.sample_all();
        assert_eq!(t.tracked(), 1, "unread for ten minutes: forgotten");
        // A new reader starts from nothing again, as on first use.
        assert_eq!(t.load(&dropped, 1).avenrun, AFTER_1);
        assert_eq!(t.tracked(), 2);

        // The read at 599 s kept `kept` until 1199 s; `dropped`, read again at 600 s, stays.
        t.set_clock(last_second + FORGET_AFTER.as_secs() - 1);
        t.sample_all();
        assert_eq!(t.tracked(), 2, "kept was read 599 s before");
        t.set_clock(last_second + FORGET_AFTER.as_secs());
        t.sample_all();
        assert_eq!(
            t.tracked(),
            1,
            "kept unread for ten minutes, dropped for 599 s"
        );
        assert_eq!(
            t.load(&dropped, 1).avenrun,
            AFTER_1_1_1,
            "sampled at both ticks since"
        );
    }

    #[test]
    fn a_removed_cgroup_is_forgotten_at_the_next_tick() {
        let fx = Fixture::new();
        let gone = fx.cpu_cgroup_with_tasks("gone", &[(10, 'R')]);
        let stays = fx.cpu_cgroup_with_tasks("stays", &[(20, 'R')]);
        let t = tracker(&fx);
        t.load(&gone, 1);
        t.load(&stays, 1);
        fx.remove("sys/fs/cgroup/cpu/gone");
        t.sample_all();
        assert_eq!(t.tracked(), 1, "the removed cgroup's entry is gone");
        assert_eq!(
            t.load(&stays, 1).avenrun,
            AFTER_1_1,
            "the other is still sampled"
        );
    }
}
