//! Open files: their numbers, and what is kept for those whose reader is in the middle of
//! reading.
//!
//! An open costs nothing here until its first read: only then is something kept, and only
//! while it is needed. A reader reading in small chunks slices one [`Snapshot`] and never
//! sees a torn file; once it has read to the end only the length is kept, so that a read
//! there answers end-of-file rather than the tail of a newer, longer rendering. A reader that rewinds (procps `top` keeps /proc files open and rereads from 0)
//! gets fresh numbers, as with the kernel's own /proc. Whatever is kept is charged to the
//! reader's group (see [`super::budget`]); an open with nothing kept (never read, refused by
//! its group's bound, opened by a predecessor, a directory) holds no memory at all.
//!
//! Handle numbers are `generation << 40 | counter`: a daemon that took over the connection
//! serves under a new generation. Kept entries live in a sharded map: no lock is shared by
//! all readers.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::budget::Charge;
use super::snapshots::Snapshot;

const SHARDS: usize = 32;
/// Bits of a handle number below the generation.
const COUNTER_BITS: u32 = 40;

/// What one kept entry costs, charged to its reader's group: its slot in a table that may be
/// down to under half full after growing, twice over.
pub const ENTRY_COST: usize = 2 * std::mem::size_of::<(u64, Kept)>();

/// What is kept for one open file.
pub struct Kept {
    /// What the reader was served at its last read from offset 0; `None` once it has read
    /// to the end.
    snapshot: Option<Arc<Snapshot>>,
    /// The snapshot's length: where the reader's file ends.
    len: usize,
    /// The entry itself, paid for by the reader's group.
    _charge: Charge,
}

impl Kept {
    /// A reader in the middle of `snapshot`, its entry paid for by `charge`.
    pub fn reading(snapshot: Arc<Snapshot>, charge: Charge) -> Self {
        Kept {
            len: snapshot.bytes.len(),
            snapshot: Some(snapshot),
            _charge: charge,
        }
    }

    /// A reader that has read its `len` bytes to the end, its entry paid for by `charge`.
    pub fn ended(len: usize, charge: Charge) -> Self {
        Kept {
            snapshot: None,
            len,
            _charge: charge,
        }
    }
}

/// What a read past the start finds kept for its open.
#[derive(Debug)]
pub enum Found {
    /// The snapshot to slice.
    Snapshot(Arc<[u8]>),
    /// The reader read its file to the end, which was this long.
    Ended(usize),
    /// Nothing.
    Nothing,
}

/// Handle numbers given out, and what is kept for them.
pub struct Handles {
    shards: [Mutex<HashMap<u64, Kept>>; SHARDS],
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

    fn shard(&self, fh: u64) -> &Mutex<HashMap<u64, Kept>> {
        &self.shards[fh as usize % SHARDS]
    }

    /// A new handle number.
    pub fn number(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Keeps `kept` for handle `fh`, in place of what was kept before.
    pub fn keep(&self, fh: u64, kept: Kept) {
        // What the entry replaces is dropped (and its charges given back) outside the lock.
        let _before = self.shard(fh).lock().insert(fh, kept);
    }

    /// What is kept for a read of `size` bytes at `offset` from handle `fh`. A snapshot read
    /// to its end by this read is let go, keeping its length.
    pub fn find(&self, fh: u64, offset: u64, size: u32) -> Found {
        let mut shard = self.shard(fh).lock();
        let Some(kept) = shard.get_mut(&fh) else {
            return Found::Nothing;
        };
        let Some(snapshot) = &kept.snapshot else {
            return Found::Ended(kept.len);
        };
        let bytes = snapshot.bytes.clone();
        if offset.saturating_add(u64::from(size)) >= kept.len as u64 {
            let _done = kept.snapshot.take();
            drop(shard);
        }
        Found::Snapshot(bytes)
    }

    /// Forgets handle `fh` (on release, or before it keeps something new), giving back what
    /// it held.
    pub fn forget(&self, fh: u64) {
        let mut shard = self.shard(fh).lock();
        let gone = shard.remove(&fh);
        // A table that emptied (the container that held 100,000 opens closed them) gives its
        // memory back.
        if shard.capacity() > 64 && shard.len() * 4 < shard.capacity() {
            let len = shard.len();
            shard.shrink_to(2 * len);
        }
        drop(shard);
        drop(gone);
    }

    /// How many handles have something kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::budget::{Accounts, Limits};
    use crate::fs::provider::Group;
    use crate::fs::snapshots::{self, OVERHEAD};

    /// The README gives the cost of a file read to its end.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn an_entry_costs_80_bytes() {
        assert_eq!(ENTRY_COST, 80);
    }

    #[test]
    fn numbers_carry_the_generation() {
        let h = Handles::new(3);
        let a = h.number();
        assert_eq!(a >> 40, 3);
        assert_ne!(h.number(), a);
    }

    #[test]
    fn a_snapshot_is_sliced_until_read_to_its_end_then_only_its_length_is_kept() {
        let accounts = Accounts::new(Limits::DEFAULT);
        let g = accounts.of(Group::new("g"));
        let h = Handles::new(1);
        let fh = h.number();
        assert!(matches!(h.find(fh, 3, 1), Found::Nothing));
        let snap = snapshots::keep(&g, 1, b"0123456789".to_vec()).unwrap();
        h.keep(fh, Kept::reading(snap, g.charge(ENTRY_COST).unwrap()));
        assert_eq!(g.held(), 10 + OVERHEAD + ENTRY_COST);
        assert!(matches!(h.find(fh, 1, 4), Found::Snapshot(b) if &*b == b"0123456789"));
        assert!(
            matches!(h.find(fh, 5, 5), Found::Snapshot(_)),
            "this read reaches the end"
        );
        assert_eq!(g.held(), ENTRY_COST, "the snapshot is let go");
        assert!(matches!(h.find(fh, 10, 5), Found::Ended(10)));
        h.forget(fh);
        assert_eq!(g.held(), 0);
        assert_eq!(h.len(), 0);
    }

    #[test]
    fn keeping_again_gives_back_what_was_kept() {
        let accounts = Accounts::new(Limits::DEFAULT);
        let g = accounts.of(Group::new("g"));
        let h = Handles::new(1);
        let fh = h.number();
        h.keep(fh, Kept::ended(5, g.charge(ENTRY_COST).unwrap()));
        h.keep(fh, Kept::ended(7, g.charge(ENTRY_COST).unwrap()));
        assert_eq!(g.held(), ENTRY_COST);
        assert!(matches!(h.find(fh, 0, 1), Found::Ended(7)));
    }

    #[test]
    fn an_emptied_table_gives_its_memory_back() {
        let accounts = Accounts::new(Limits::DEFAULT);
        let g = accounts.of(Group::new("g"));
        let h = Handles::new(1);
        let fhs: Vec<u64> = (0..100_000).map(|_| h.number()).collect();
        for &fh in &fhs {
            h.keep(fh, Kept::ended(1, g.charge(ENTRY_COST).unwrap()));
        }
        let full: usize = h.shards.iter().map(|s| s.lock().capacity()).sum();
        for &fh in &fhs {
            h.forget(fh);
        }
        let empty: usize = h.shards.iter().map(|s| s.lock().capacity()).sum();
        assert!(empty * 10 < full, "capacity {full} → {empty}");
        assert_eq!(g.held(), 0);
    }
}
