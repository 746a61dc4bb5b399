//! The init of a reader's pid namespace, found by walking `PPid:` instead of forking.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use super::error::ReaderError;
use super::procpid::{StatusFields, ns_inode, read_status, start_ticks};
use crate::fallback;
use crate::host::HostPaths;

/// Init of a pid namespace: host pid and start time (clock ticks since boot, field 22 of
/// `/proc/<pid>/stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NsInit {
    /// Host pid of the namespace's process 1.
    pub pid: u32,
    /// Its start time, in clock ticks since boot.
    pub start_ticks: u64,
}

/// Namespaces come and go with containers; past this many cached inits the cache is dropped
/// rather than grown (a miss costs only a short walk).
const CACHE_LIMIT: usize = 4096;

/// A `PPid:` chain longer than this is a loop in a broken tree, not a real process tree.
const MAX_WALK: usize = 4096;

/// Finds the init of a reader's pid namespace without forking, and caches it per namespace.
///
/// `Send + Sync`: the lock is held only to copy an entry in or out, never across file I/O.
pub struct PidNsCache {
    host: HostPaths,
    /// pid-namespace inode -> its init.
    inits: RwLock<HashMap<u64, NsInit>>,
    /// Inode of the host's pid namespace once a reader showed it (0 until then).
    host_ns: AtomicU64,
}

impl PidNsCache {
    /// An empty cache reading processes under `host.proc`.
    pub fn new(host: HostPaths) -> Self {
        PidNsCache {
            host,
            inits: RwLock::new(HashMap::new()),
            host_ns: AtomicU64::new(0),
        }
    }

    /// `Ok(None)`: the reader is in the host pid namespace (its `NSpid:` line in
    /// `<proc>/<pid>/status` has a single entry). Otherwise the ancestor (walking `PPid:`)
    /// whose innermost NSpid is 1, cached per pid-namespace inode (of `<proc>/<pid>/ns/pid`);
    /// a cached init is trusted only while its start time is unchanged. A pid whose `/proc`
    /// entries vanish gives `Err`.
    ///
    /// When the walk leaves the namespace without meeting its init, the reader was put there
    /// with `setns` (`docker exec`, `kubectl exec`, `nsenter`): its parent is outside. The init
    /// is then looked for among all host processes (one `stat` each, once per namespace, then
    /// cached: about what one lxcfs fork costs). Only if none has NSpid 1 (the init exited and
    /// the namespace is being torn down) is the oldest ancestor still inside the namespace
    /// (the last one the walk met) returned, uncached, as the best available reference.
    pub fn init_of(&self, pid: u32) -> Result<Option<NsInit>, ReaderError> {
        // The namespace inode first: one stat answers most requests (the host's namespace,
        // or a container's whose init is cached), with no status file to parse.
        let ns = ns_inode(&self.host, pid)?;
        if ns == self.host_ns.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let cached = self.inits.read().get(&ns).copied();
        if let Some(init) = cached {
            if start_ticks(&self.host, init.pid).ok() == Some(init.start_ticks) {
                return Ok(Some(init));
            }
            let mut inits = self.inits.write();
            // Another thread may have put a fresh init there meanwhile: drop only the stale one.
            if inits.get(&ns) == Some(&init) {
                inits.remove(&ns);
            }
        }
        let reader = read_status(&self.host, pid)?;
        if reader.depth() <= 1 {
            self.host_ns.store(ns, Ordering::Relaxed);
            return Ok(None);
        }

        let depth = reader.depth();
        let (oldest_inside, found) = self.walk_to_init(pid, reader)?;
        let Some(init_pid) = found.or_else(|| self.scan_for_init(ns, depth)) else {
            fallback::note(format_args!(
                "pid namespace {ns} of {pid} has no init; using its oldest ancestor {oldest_inside}"
            ));
            let start_ticks = start_ticks(&self.host, oldest_inside)?;
            return Ok(Some(NsInit {
                pid: oldest_inside,
                start_ticks,
            }));
        };
        let init = NsInit {
            pid: init_pid,
            start_ticks: start_ticks(&self.host, init_pid)?,
        };
        let mut inits = self.inits.write();
        if inits.len() >= CACHE_LIMIT {
            inits.clear();
        }
        inits.insert(ns, init);
        Ok(Some(init))
    }

    /// Walks `PPid:` up from `pid` while inside its namespace. Returns the last process met
    /// inside it and the init, if met.
    fn walk_to_init(
        &self,
        pid: u32,
        status: StatusFields,
    ) -> Result<(u32, Option<u32>), ReaderError> {
        let depth = status.depth();
        let (mut current, mut status) = (pid, status);
        for _ in 0..MAX_WALK {
            if status.innermost() == Some(1) {
                return Ok((current, Some(current)));
            }
            let parent = match status.ppid {
                0 => break,
                p => p,
            };
            let parent_status = match read_status(&self.host, parent) {
                Ok(s) => s,
                // The parent exited: `current` has been reparented, so look again once.
                Err(ReaderError::Gone { .. }) => match read_status(&self.host, current) {
                    Ok(again) if again.ppid != status.ppid => {
                        status = again;
                        continue;
                    }
                    _ => break,
                },
                Err(e) => return Err(e),
            };
            // An ancestor is never in a deeper namespace, and one at the same depth is in the
            // same namespace (setns only enters descendants of one's own namespace), so a
            // shallower parent means we have left the namespace.
            if parent_status.depth() != depth {
                break;
            }
            current = parent;
            status = parent_status;
        }
        Ok((current, None))
    }

    /// Looks through all host processes for the one numbered 1 in namespace `ns` (whose
    /// processes are `depth` levels deep).
    fn scan_for_init(&self, ns: u64, depth: usize) -> Option<u32> {
        let entries = match std::fs::read_dir(&self.host.proc) {
            Ok(e) => e,
            Err(e) => {
                fallback::note(format_args!("{}: {e}", self.host.proc.display()));
                return None;
            }
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&p| ns_inode(&self.host, p).ok() == Some(ns))
            .find(|&p| {
                read_status(&self.host, p)
                    .is_ok_and(|s| s.depth() == depth && s.innermost() == Some(1))
            })
    }

    /// How `task` (a host pid) is numbered in `reader`'s pid namespace (its NSpid entry at the
    /// reader's depth), `None` if not visible there or either process is gone. A reader in the
    /// host namespace gets `task` back unchecked, since host pids are what it sees.
    ///
    /// A task in a namespace nested below the reader's is checked by walking its `PPid:` to the
    /// first ancestor at the reader's depth; if that ancestor is not in the reader's namespace,
    /// or the chain skips that depth (a process that setns'd in from further out), the answer is
    /// `None`: "not visible" is safer than leaking a number from another namespace.
    pub fn pid_as_seen_by(&self, reader: u32, task: u32) -> Option<u32> {
        let depth = read_status(&self.host, reader).ok()?.depth();
        if depth <= 1 {
            return Some(task);
        }
        let task_status = read_status(&self.host, task).ok()?;
        let seen_as = *task_status.nspid.get(depth - 1)?;
        let reader_ns = ns_inode(&self.host, reader).ok()?;
        let (mut current, mut status) = (task, task_status);
        for _ in 0..MAX_WALK {
            if status.depth() == depth {
                return (ns_inode(&self.host, current).ok()? == reader_ns).then_some(seen_as);
            }
            if status.depth() < depth || status.ppid == 0 {
                return None;
            }
            current = status.ppid;
            status = read_status(&self.host, current).ok()?;
        }
        None
    }
}
