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

struct Tracked {
    load: Mutex<LoadAvg>,
    /// Seconds since the tracker started, at the last read.
    last_read: AtomicU64,
}

/// Load averages of the cgroups being read.
pub struct LoadTracker {
    host: HostPaths,
    started: Instant,
    tracked: RwLock<HashMap<PathBuf, Arc<Tracked>>>,
}

impl LoadTracker {
    /// A tracker with its sampling thread; the thread ends when the tracker is dropped.
    pub fn start(host: HostPaths) -> Arc<LoadTracker> {
        let tracker = Arc::new(LoadTracker {
            host,
            started: Instant::now(),
            tracked: RwLock::new(HashMap::new()),
        });
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

    fn now_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
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
