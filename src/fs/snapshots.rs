//! Snapshots: what an open file was served at offset 0, kept (and paid for by its reader's
//! group) so that reads at later offsets slice that one version.
//!
//! Many files come out the same on every read of a group (cpuinfo, the CPU lists, limits), so
//! a new rendering equal to the group's last one of that file is replaced by it, and those
//! opens share one allocation, charged once: 19,900 opens of `proc/cpuinfo`, read one byte
//! each, grew the daemon by 55 MB when each kept its own. Only a group's own renderings are
//! shared: another group could otherwise keep alive (and charged to the first) what the
//! first no longer holds.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use super::budget::{Account, Charge};

/// What a snapshot costs beyond its bytes: its two reference-counted blocks and the
/// allocator's headers.
pub const OVERHEAD: usize = 96;

/// Bytes served to a reader, paid for by its group while they are kept.
pub struct Snapshot {
    /// The content.
    pub bytes: Arc<[u8]>,
    _charge: Charge,
}

/// A group's last snapshot of each file it reads, by node id. Weak: a snapshot no open keeps
/// is gone, and with it its charge.
#[derive(Default)]
pub struct Recent(HashMap<u64, Weak<Snapshot>>);

/// `bytes` of file `ino`, kept for a reader of `account`: the group's last snapshot of the
/// file when it is equal, else a new one when the group can pay for it; the bytes back when
/// it cannot.
pub fn keep(account: &Arc<Account>, ino: u64, bytes: Vec<u8>) -> Result<Arc<Snapshot>, Vec<u8>> {
    let mut recent = account.recent.lock();
    if let Some(same) = recent
        .0
        .get(&ino)
        .and_then(Weak::upgrade)
        .filter(|s| *s.bytes == *bytes)
    {
        return Ok(same);
    }
    let Some(charge) = account.charge(bytes.len() + OVERHEAD) else {
        return Err(bytes);
    };
    let fresh = Arc::new(Snapshot {
        bytes: Arc::from(bytes),
        _charge: charge,
    });
    recent.0.insert(ino, Arc::downgrade(&fresh));
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::budget::{Accounts, Limits};
    use crate::fs::provider::Group;

    fn accounts() -> Accounts {
        Accounts::new(Limits {
            group: 1000,
            ..Limits::DEFAULT
        })
    }

    #[test]
    fn equal_renderings_of_one_group_share_one_allocation_charged_once() {
        let a = accounts();
        let g = a.of(Group::new("g"));
        let first = keep(&g, 1, b"cpu0".to_vec()).unwrap();
        let again = keep(&g, 1, b"cpu0".to_vec()).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(g.held(), 4 + OVERHEAD);
        let other_file = keep(&g, 2, b"cpu0".to_vec()).unwrap();
        assert!(
            !Arc::ptr_eq(&first, &other_file),
            "another file is not shared"
        );
        let changed = keep(&g, 1, b"cpu1".to_vec()).unwrap();
        assert_eq!(&*changed.bytes, b"cpu1");
        assert_eq!(g.held(), 3 * (4 + OVERHEAD));
        drop((first, again, other_file, changed));
        assert_eq!(g.held(), 0, "every charge given back with its snapshot");
    }

    #[test]
    fn groups_do_not_share() {
        let a = accounts();
        let (g, h) = (a.of(Group::new("g")), a.of(Group::new("h")));
        let mine = keep(&g, 1, b"same".to_vec()).unwrap();
        let theirs = keep(&h, 1, b"same".to_vec()).unwrap();
        assert!(!Arc::ptr_eq(&mine, &theirs));
        assert_eq!((g.held(), h.held()), (4 + OVERHEAD, 4 + OVERHEAD));
    }

    #[test]
    fn a_group_that_cannot_pay_gets_its_bytes_back_but_may_still_share() {
        let a = accounts();
        let g = a.of(Group::new("g"));
        let big = keep(&g, 1, vec![b'x'; 800]).unwrap();
        let refused = keep(&g, 2, vec![b'y'; 800]);
        assert!(matches!(refused, Err(b) if b == vec![b'y'; 800]));
        let shared = keep(&g, 1, vec![b'x'; 800]).expect("an equal snapshot costs nothing more");
        assert!(Arc::ptr_eq(&big, &shared));
    }
}
