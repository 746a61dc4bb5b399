//! The task counts of the cgroups being read, kept for a moment: counting reads one file per
//! thread of the cgroup ([`count_tasks`]), about 24 µs a thread on the development machine,
//! so a cgroup with 1,000 threads costs 24 ms per `proc/stat`, `proc/loadavg` or `sysinfo`
//! read. Kept for [`FRESH_FOR`], a cgroup is counted at most twice a second however many
//! readers ask, and readers asking at once wait for one count instead of each making its own.
//!
//! The price is staleness: `procs_running`, `procs_blocked`, loadavg's `running/total` and
//! `lastpid`, and `sysinfo`'s `procs` may be up to [`FRESH_FOR`] old, where the kernel's are
//! instantaneous (and the load averages themselves are sampled every 5 s anyway). A cgroup
//! removed and made again under the same path is counted afresh: an entry is only used for
//! the directory it was made from (same inode).

use std::num::NonZeroUsize;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::Mutex;

use super::tasks::{Newest, count_tasks};
use crate::host::HostPaths;
use crate::model::TaskCounts;

/// How long a cgroup's counts are used before it is counted again.
pub const FRESH_FOR: Duration = Duration::from_millis(500);

/// Cgroups whose counts are kept; the least recently read is dropped first. Far more than
/// the containers one host runs, and an entry is a path and a few numbers.
const CGROUPS: usize = 1024;

/// One count of one cgroup directory.
#[derive(Clone, Copy)]
struct Sample {
    /// When the count started.
    at: Instant,
    /// The directory's inode when counted, which tells a cgroup made again at the same path.
    ino: u64,
    counts: TaskCounts,
    newest: Option<Newest>,
}

/// The latest count of one cgroup, behind a lock that a count holds: readers of a cgroup
/// being counted wait for that count.
type Slot = Arc<Mutex<Option<Sample>>>;

/// Recent task counts of cgroup directories, shared by every serving thread.
pub struct TaskCache {
    host: HostPaths,
    fresh_for: Duration,
    slots: Mutex<LruCache<PathBuf, Slot>>,
}

impl TaskCache {
    /// A cache counting tasks of `host`, each count used for `fresh_for`.
    pub fn new(host: HostPaths, fresh_for: Duration) -> TaskCache {
        TaskCache {
            host,
            fresh_for,
            slots: Mutex::new(LruCache::new(
                NonZeroUsize::new(CGROUPS).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// The task counts of cgroup directory `dir` and its newest thread, as [`count_tasks`]
    /// gives them, counted at most [`TaskCache::new`]'s `fresh_for` ago.
    pub fn count(&self, dir: &Path) -> (TaskCounts, Option<Newest>) {
        let Ok(ino) = std::fs::metadata(dir).map(|m| m.ino()) else {
            // Removed: its entry goes, and the count says what a vanished cgroup has.
            self.slots.lock().pop(dir);
            return count_tasks(&self.host, dir);
        };
        let slot = self
            .slots
            .lock()
            .get_or_insert_ref(dir, Slot::default)
            .clone();
        let mut sample = slot.lock();
        if let Some(s) = *sample
            && s.ino == ino
            && s.at.elapsed() < self.fresh_for
        {
            return (s.counts, s.newest);
        }
        let at = Instant::now();
        let (counts, newest) = count_tasks(&self.host, dir);
        *sample = Some(Sample {
            at,
            ino,
            counts,
            newest,
        });
        (counts, newest)
    }

    /// How many cgroups have an entry.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Fixture;

    /// The counts and the newest thread's tid, as `cache` gives them for `dir`.
    fn seen(cache: &TaskCache, dir: &Path) -> (TaskCounts, Option<u32>) {
        let (counts, newest) = cache.count(dir);
        (counts, newest.map(|n| n.tid))
    }

    fn running(n: u64, total: u64) -> TaskCounts {
        TaskCounts {
            running: n,
            blocked: 0,
            total,
        }
    }

    #[test]
    fn a_count_is_used_while_fresh_then_made_again() {
        let fx = Fixture::new();
        let dir = fx.cpu_cgroup_with_tasks("ctr", &[(10, 'R'), (11, 'S')]);
        let kept = TaskCache::new(fx.host.clone(), Duration::from_secs(3600));
        assert_eq!(seen(&kept, &dir), (running(1, 2), Some(11)));
        fx.cpu_cgroup_with_tasks("ctr", &[(10, 'R'), (11, 'R'), (12, 'R')]);
        assert_eq!(
            seen(&kept, &dir),
            (running(1, 2), Some(11)),
            "within the fresh time: the first count"
        );
        let expiring = TaskCache::new(fx.host.clone(), Duration::ZERO);
        assert_eq!(seen(&expiring, &dir), (running(3, 3), Some(12)));
        fx.cpu_cgroup_with_tasks("ctr", &[(10, 'S')]);
        assert_eq!(
            seen(&expiring, &dir),
            (running(0, 1), Some(10)),
            "past the fresh time: counted again"
        );
    }

    #[test]
    fn each_cgroup_has_its_own_count_and_removed_ones_lose_theirs() {
        let fx = Fixture::new();
        let a = fx.cpu_cgroup_with_tasks("a", &[(10, 'R')]);
        let b = fx.cpu_cgroup_with_tasks("b", &[(20, 'D'), (21, 'D')]);
        let cache = TaskCache::new(fx.host.clone(), Duration::from_secs(3600));
        assert_eq!(cache.count(&a).0, running(1, 1));
        let blocked = TaskCounts {
            running: 0,
            blocked: 2,
            total: 2,
        };
        assert_eq!(cache.count(&b).0, blocked);
        assert_eq!(cache.len(), 2);
        fx.remove("sys/fs/cgroup/cpu/b");
        assert_eq!(cache.count(&b), (TaskCounts::default(), None));
        assert_eq!(cache.len(), 1, "the removed cgroup's entry is gone");
        assert_eq!(cache.count(&a).0, running(1, 1));
    }

    #[test]
    fn the_cache_is_bounded() {
        let fx = Fixture::new();
        let cache = TaskCache::new(fx.host.clone(), Duration::from_secs(3600));
        for i in 0..CGROUPS + 10 {
            let dir = fx.path(&format!("sys/fs/cgroup/cpu/c{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            cache.count(&dir);
        }
        assert_eq!(cache.len(), CGROUPS);
    }
}
