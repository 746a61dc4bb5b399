//! Host files that are the same for every reader and costly to make, kept for a moment and
//! shared by all readers: `/proc/cpuinfo`.
//!
//! The kernel formats `/proc/cpuinfo` afresh on each read, a `seq_printf` per flag of every
//! CPU: 27 µs for 2 CPUs here (perf: `vsnprintf`, `show_cpuinfo`), four times what
//! `/proc/meminfo` costs, and it grows with the CPUs (a block per CPU). Yet only its
//! `cpu MHz` lines move. Kept for [`CPUINFO_FRESH_FOR`], one generation serves every
//! read in that time; a reader sees `cpu MHz` up to that old, and a CPU brought online
//! appears that much later (one taken offline goes at once: which CPUs are shown comes from
//! `online`, read each time).

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::host::HostPaths;
use crate::kfile;

/// How long one read of the host's `/proc/cpuinfo` serves every reader.
pub const CPUINFO_FRESH_FOR: Duration = Duration::from_millis(100);

/// One host file kept for a while.
pub(crate) struct Shared {
    /// `proc` file name, e.g. `cpuinfo`.
    name: &'static str,
    /// How long a read of it is served.
    fresh_for: Duration,
    /// The last read and when it was made. Locked only to copy the `Arc` in or out, never
    /// across the read itself.
    last: Mutex<Option<(Instant, Arc<str>)>>,
}

impl Shared {
    /// The host's `/proc/<name>`, each read of it served for `fresh_for`.
    pub(crate) fn new(name: &'static str, fresh_for: Duration) -> Self {
        Shared {
            name,
            fresh_for,
            last: Mutex::new(None),
        }
    }

    /// The file's text: the last read if younger than `fresh_for`, else read now. Threads
    /// that find it stale at the same moment each read it (no thread waits on another's read).
    pub(crate) fn get(&self, host: &HostPaths) -> io::Result<Arc<str>> {
        let now = Instant::now();
        if let Some((at, text)) = &*self.last.lock()
            && now.saturating_duration_since(*at) < self.fresh_for
        {
            return Ok(Arc::clone(text));
        }
        let text: Arc<str> = kfile::read_with(&host.proc_file(self.name), |t: &str| Arc::from(t))?;
        *self.last.lock() = Some((now, Arc::clone(&text)));
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Fixture;

    #[test]
    fn a_read_serves_until_it_is_older_than_fresh_for() {
        let fx = Fixture::new();
        fx.write("proc/cpuinfo", "processor\t: 0\n");
        let kept = Shared::new("cpuinfo", Duration::from_secs(3600));
        let unkept = Shared::new("cpuinfo", Duration::ZERO);
        assert_eq!(&*kept.get(&fx.host).unwrap(), "processor\t: 0\n");
        assert_eq!(&*unkept.get(&fx.host).unwrap(), "processor\t: 0\n");
        fx.write("proc/cpuinfo", "processor\t: 1\n");
        assert_eq!(&*kept.get(&fx.host).unwrap(), "processor\t: 0\n", "kept");
        assert_eq!(&*unkept.get(&fx.host).unwrap(), "processor\t: 1\n", "read");
    }

    #[test]
    fn a_failed_read_is_an_error_and_not_kept() {
        let fx = Fixture::new();
        let shared = Shared::new("cpuinfo", Duration::from_secs(3600));
        let err = shared.get(&fx.host).expect_err("no such file");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        fx.write("proc/cpuinfo", "processor\t: 0\n");
        assert_eq!(&*shared.get(&fx.host).unwrap(), "processor\t: 0\n");
    }
}
