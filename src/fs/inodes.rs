//! Inode numbers for paths, handed out on first lookup and stable for the daemon's life.
//!
//! The tree is small and fixed apart from the passed-through `sys/devices/system/cpu`
//! subtree, so numbers are never reused or forgotten. The table is sharded so that
//! concurrent lookups from many readers do not meet on one lock.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What the table knows of one inode.
pub struct InodeInfo {
    /// Its path relative to the mount.
    pub path: Arc<str>,
    /// The largest content served from it so far, in bytes (its reported size).
    pub served: AtomicU64,
}

const SHARDS: usize = 16;

/// Inode number of the mount's root directory (fixed by FUSE).
pub const ROOT_INO: u64 = 1;

/// Two-way map between relative paths and inode numbers.
pub struct Inodes {
    by_ino: [RwLock<HashMap<u64, Arc<InodeInfo>>>; SHARDS],
    by_path: [RwLock<HashMap<Arc<str>, u64>>; SHARDS],
    hasher: RandomState,
    next: AtomicU64,
}

impl Default for Inodes {
    fn default() -> Self {
        let table = Inodes {
            by_ino: std::array::from_fn(|_| RwLock::new(HashMap::new())),
            by_path: std::array::from_fn(|_| RwLock::new(HashMap::new())),
            hasher: RandomState::new(),
            next: AtomicU64::new(ROOT_INO + 1),
        };
        let root: Arc<str> = Arc::from("");
        table.by_ino[ROOT_INO as usize % SHARDS].write().insert(
            ROOT_INO,
            Arc::new(InodeInfo {
                path: root.clone(),
                served: AtomicU64::new(0),
            }),
        );
        table.by_path[table.path_shard(&root)]
            .write()
            .insert(root, ROOT_INO);
        table
    }
}

impl Inodes {
    fn path_shard(&self, path: &str) -> usize {
        self.hasher.hash_one(path) as usize % SHARDS
    }

    /// Inode `ino`, if it was ever handed out.
    pub fn get(&self, ino: u64) -> Option<Arc<InodeInfo>> {
        self.by_ino[ino as usize % SHARDS].read().get(&ino).cloned()
    }

    /// The path of inode `ino`, if it was ever handed out.
    pub fn path(&self, ino: u64) -> Option<Arc<str>> {
        self.get(ino).map(|info| info.path.clone())
    }

    /// The inode number of `path`, allocating one on first use.
    pub fn intern(&self, path: &str) -> u64 {
        let shard = &self.by_path[self.path_shard(path)];
        if let Some(ino) = shard.read().get(path) {
            return *ino;
        }
        let mut by_path = shard.write();
        if let Some(ino) = by_path.get(path) {
            return *ino;
        }
        let ino = self.next.fetch_add(1, Ordering::Relaxed);
        let key: Arc<str> = Arc::from(path);
        // Publish ino -> path before path -> ino so that nobody can hold a number we
        // cannot resolve.
        self.by_ino[ino as usize % SHARDS].write().insert(
            ino,
            Arc::new(InodeInfo {
                path: key.clone(),
                served: AtomicU64::new(0),
            }),
        );
        by_path.insert(key, ino);
        ino
    }
}

/// Joins a directory path and an entry name into a child path.
pub fn child_path(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_reversible() {
        let t = Inodes::default();
        assert_eq!(t.intern(""), ROOT_INO);
        let a = t.intern("proc/meminfo");
        let b = t.intern("proc/stat");
        assert_ne!(a, b);
        assert_eq!(t.intern("proc/meminfo"), a);
        assert_eq!(t.path(a).as_deref(), Some("proc/meminfo"));
        assert_eq!(t.path(9999), None);
    }

    #[test]
    fn child_paths() {
        assert_eq!(child_path("", "proc"), "proc");
        assert_eq!(child_path("proc", "meminfo"), "proc/meminfo");
    }
}
