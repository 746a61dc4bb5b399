//! Open files and directories: what each open saw.
//!
//! A file handle keeps the bytes made for its reader at the last read at offset 0, so a
//! reader reading in small chunks slices one snapshot and never sees a torn file, while a
//! reader that rewinds (procps `top` keeps /proc files open and rereads from 0) gets fresh
//! numbers, as with the kernel's own /proc. Handles live in a sharded map: no lock is shared
//! by all readers.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::inodes::InodeInfo;
use super::provider::NodeKind;

const SHARDS: usize = 32;

/// One open file or directory.
pub struct Handle {
    /// The inode that was opened.
    pub inode: Arc<InodeInfo>,
    /// File content made at the last read at offset 0 (files only).
    pub snapshot: Mutex<Option<Arc<[u8]>>>,
    /// Directory entries as listed at open (directories only): (inode, kind, name).
    pub entries: Vec<(u64, NodeKind, String)>,
}

/// All open handles, by handle number.
pub struct Handles {
    shards: [Mutex<HashMap<u64, Arc<Handle>>>; SHARDS],
    next: AtomicU64,
}

impl Default for Handles {
    fn default() -> Self {
        Handles {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            next: AtomicU64::new(1),
        }
    }
}

impl Handles {
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

/// The bytes of `data` a read of `size` at `offset` returns.
pub fn slice(data: &[u8], offset: u64, size: u32) -> &[u8] {
    let len = data.len() as u64;
    let start = offset.min(len) as usize;
    let end = offset.saturating_add(u64::from(size)).min(len) as usize;
    &data[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_clamp_to_the_content() {
        let d = b"hello";
        assert_eq!(slice(d, 0, 2), b"he");
        assert_eq!(slice(d, 3, 100), b"lo");
        assert_eq!(slice(d, 5, 1), b"");
        assert_eq!(slice(d, u64::MAX, u32::MAX), b"");
    }

    #[test]
    fn handles_come_and_go() {
        let h = Handles::default();
        let inode = Arc::new(InodeInfo {
            path: Arc::from("proc/meminfo"),
            served: Default::default(),
        });
        let fh = h.insert(Handle {
            inode,
            snapshot: Mutex::new(None),
            entries: vec![],
        });
        assert_eq!(&*h.get(fh).unwrap().inode.path, "proc/meminfo");
        assert_eq!(h.len(), 1);
        h.remove(fh);
        assert!(h.get(fh).is_none());
        assert_eq!(h.len(), 0);
    }
}
