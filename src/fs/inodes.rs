//! Node ids: the root is 1, every other node a fixed 64-bit hash of its path.
//!
//! Containers bind-mount single files, and the kernel then addresses them by node id alone,
//! with no LOOKUP, for as long as the bind exists: across daemon restarts and upgrades. So an
//! id must mean the same path in every process and every build. FNV-1a is fixed by its
//! definition (std's hashers may change between Rust releases); changing [`node_id`] breaks
//! every live bind mount at the next upgrade, which the golden-value test guards against.
//! Collisions are checked whenever paths are registered: at start-up the whole tree is walked.

use parking_lot::RwLock;

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// What the table knows of one node.
pub struct InodeInfo {
    /// Its path relative to the mount.
    pub path: Arc<str>,
    /// The largest content served from it so far, in bytes (its reported size).
    pub served: AtomicU64,
}

impl InodeInfo {
    /// A node at `path`, nothing served yet.
    pub fn new(path: &str) -> Self {
        InodeInfo {
            path: Arc::from(path),
            served: AtomicU64::new(0),
        }
    }
}

const SHARDS: usize = 16;

/// Node id of the mount's root directory (fixed by FUSE).
pub const ROOT_INO: u64 = 1;

/// The node id of `path` (relative to the mount, `""` for the root).
pub fn node_id(path: &str) -> u64 {
    if path.is_empty() {
        return ROOT_INO;
    }
    let mut h = fnv::FnvHasher::default();
    h.write(path.as_bytes());
    // Bit 63 clear keeps st_ino positive for tools that read it as signed; 0 and 1 are the
    // kernel's "none" and the root.
    let id = h.finish() & !(1 << 63);
    if id <= ROOT_INO { id + 2 } else { id }
}

/// Two paths with one node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node id {id:#x} of {new:?} is already {existing:?}'s")]
pub struct Collision {
    /// The id.
    pub id: u64,
    /// The path registered first.
    pub existing: Arc<str>,
    /// The path that collided.
    pub new: String,
}

/// The paths behind the node ids handed out.
pub struct Inodes {
    by_ino: [RwLock<HashMap<u64, Arc<InodeInfo>>>; SHARDS],
}

impl Default for Inodes {
    fn default() -> Self {
        let table = Inodes {
            by_ino: std::array::from_fn(|_| RwLock::new(HashMap::new())),
        };
        let _ = table.intern("");
        table
    }
}

impl Inodes {
    fn shard(&self, ino: u64) -> &RwLock<HashMap<u64, Arc<InodeInfo>>> {
        &self.by_ino[ino as usize % SHARDS]
    }

    /// Node `ino`, if its path was registered.
    pub fn get(&self, ino: u64) -> Option<Arc<InodeInfo>> {
        self.shard(ino).read().get(&ino).cloned()
    }

    /// Registers `path` and returns its node id, or the collision with another path.
    pub fn intern(&self, path: &str) -> Result<u64, Collision> {
        let id = node_id(path);
        let check = |info: &InodeInfo| {
            if &*info.path == path {
                Ok(id)
            } else {
                Err(Collision {
                    id,
                    existing: info.path.clone(),
                    new: path.to_string(),
                })
            }
        };
        if let Some(info) = self.shard(id).read().get(&id) {
            return check(info);
        }
        let mut shard = self.shard(id).write();
        let info = shard
            .entry(id)
            .or_insert_with(|| Arc::new(InodeInfo::new(path)));
        check(info)
    }

    /// How many nodes are registered.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.by_ino.iter().map(|s| s.read().len()).sum()
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

    /// Frozen: these ids are what containers' bind mounts hold across upgrades.
    #[test]
    fn node_ids_are_frozen() {
        let golden = [
            ("", 1),
            ("proc", 0x0572_9b0e_3537_bc61),
            ("proc/meminfo", 0x4986_5b5a_0139_bf53),
            ("proc/cpuinfo", 0x1644_75a0_ca3b_dd40),
            ("proc/stat", 0x5b96_6417_d916_d1c0),
            ("sys/devices/system/cpu/online", 0x5313_4890_f350_5d6f),
        ];
        let got: Vec<(&str, u64)> = golden.iter().map(|&(p, _)| (p, node_id(p))).collect();
        assert_eq!(got, golden, "node_id changed: that breaks live bind mounts");
    }

    /// The function is FNV-1a (64-bit) with bit 63 cleared: the published test vector.
    #[test]
    fn node_ids_are_fnv_1a() {
        assert_eq!(node_id("a"), 0xaf63_dc4c_8601_ec8c & !(1 << 63));
    }

    #[test]
    fn ids_avoid_0_1_and_bit_63() {
        for p in [
            "a",
            "b",
            "proc/x",
            "sys/devices/system/cpu/cpu0/topology/core_id",
        ] {
            let id = node_id(p);
            assert!(id > ROOT_INO && id & (1 << 63) == 0, "{p}: {id:#x}");
        }
    }

    #[test]
    fn interning_is_stable_and_reversible() {
        let t = Inodes::default();
        assert_eq!(t.intern(""), Ok(ROOT_INO));
        let a = t.intern("proc/meminfo").unwrap();
        assert_eq!(a, node_id("proc/meminfo"));
        assert_eq!(t.intern("proc/meminfo"), Ok(a));
        assert_eq!(&*t.get(a).unwrap().path, "proc/meminfo");
        assert!(t.get(9999).is_none());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn a_collision_is_reported_not_overwritten() {
        let t = Inodes::default();
        let id = t.intern("proc/meminfo").unwrap();
        // Plant a second path under the same id, as a colliding hash would.
        t.shard(id)
            .write()
            .insert(id, Arc::new(InodeInfo::new("proc/other")));
        let e = t.intern("proc/meminfo").unwrap_err();
        assert_eq!(&*e.existing, "proc/other");
        assert_eq!(e.new, "proc/meminfo");
    }

    #[test]
    fn child_paths() {
        assert_eq!(child_path("", "proc"), "proc");
        assert_eq!(child_path("proc", "meminfo"), "proc/meminfo");
    }
}
