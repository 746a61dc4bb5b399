//! Open files and directories: what each open saw.
//!
//! A file handle keeps the bytes made for its reader at the last read at offset 0, so a
//! reader reading in small chunks slices one snapshot and never sees a torn file, while a
//! reader that rewinds (procps `top` keeps /proc files open and rereads from 0) gets fresh
//! numbers, as with the kernel's own /proc.
//!
//! Handle numbers are `generation << 40 | counter`: a daemon that took over the connection
//! serves under a new generation, and a handle it never gave out (opened under its
//! predecessor) is adopted, never refused. Handles live in a sharded map: no lock is shared
//! by all readers.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::inodes::InodeInfo;
use super::provider::NodeKind;

const SHARDS: usize = 32;
/// Bits of a handle number below the generation.
const COUNTER_BITS: u32 = 40;

/// One open file or directory.
pub struct Handle {
    /// The inode that was opened.
    pub inode: Arc<InodeInfo>,
    /// File content made at the last read at offset 0 (files only).
    pub snapshot: Mutex<Option<Arc<[u8]>>>,
    /// Directory entries as listed at open (directories only): (inode, kind, name).
    pub entries: Vec<(u64, NodeKind, String)>,
}

impl Handle {
    /// A handle on `inode` with `entries` (empty for a file).
    pub fn new(inode: Arc<InodeInfo>, entries: Vec<(u64, NodeKind, String)>) -> Self {
        Handle {
            inode,
            snapshot: Mutex::new(None),
            entries,
        }
    }
}

/// All open handles, by handle number.
pub struct Handles {
    shards: [Mutex<HashMap<u64, Arc<Handle>>>; SHARDS],
    next: AtomicU64,
}

impl Handles {
    /// A table giving out handles of `generation` (24 bits).
    pub fn new(generation: u32) -> Self {
        Handles {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            next: AtomicU64::new(u64::from(generation & 0xff_ffff) << COUNTER_BITS | 1),
        }
    }

    fn shard(&self, fh: u64) -> &Mutex<HashMap<u64, Arc<Handle>>> {
        &self.shards[fh as usize % SHARDS]
    }

    /// Registers a handle and returns its number.
    pub fn insert(&self, handle: Handle) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        self.shard(fh).lock().insert(fh, Arc::new(handle));
        fh
    }

    /// The handle numbered `fh`, if open.
    pub fn get(&self, fh: u64) -> Option<Arc<Handle>> {
        self.shard(fh).lock().get(&fh).cloned()
    }

    /// The handle numbered `fh`, registering the one `make` builds when `fh` is unknown (an
    /// open from before a takeover); `None` when `make` cannot.
    pub fn get_or_adopt(
        &self,
        fh: u64,
        make: impl FnOnce() -> Option<Handle>,
    ) -> Option<Arc<Handle>> {
        if let Some(h) = self.get(fh) {
            return Some(h);
        }
        let handle = Arc::new(make()?);
        Some(self.shard(fh).lock().entry(fh).or_insert(handle).clone())
    }

    /// Forgets handle `fh` (on release).
    pub fn remove(&self, fh: u64) {
        self.shard(fh).lock().remove(&fh);
    }

    /// How many handles are open.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meminfo() -> Arc<InodeInfo> {
        Arc::new(InodeInfo::new("proc/meminfo"))
    }

    #[test]
    fn handles_come_and_go_and_carry_the_generation() {
        let h = Handles::new(3);
        let fh = h.insert(Handle::new(meminfo(), vec![]));
        assert_eq!(fh >> 40, 3);
        assert_eq!(&*h.get(fh).unwrap().inode.path, "proc/meminfo");
        assert_eq!(h.len(), 1);
        h.remove(fh);
        assert!(h.get(fh).is_none());
        assert_eq!(h.len(), 0);
    }

    #[test]
    fn an_unknown_handle_is_adopted_once() {
        let h = Handles::new(2);
        let old = 1 << 40 | 77;
        let a = h
            .get_or_adopt(old, || Some(Handle::new(meminfo(), vec![])))
            .unwrap();
        let b = h.get_or_adopt(old, || panic!("adopted twice")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(h.get_or_adopt(5, || None).is_none());
        assert_eq!(h.len(), 1);
    }
}
