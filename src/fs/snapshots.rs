//! Sharing identical snapshots. Every open keeps the bytes it was served (so chunked reads
//! slice one version), and a container can hold a million descriptors: 19,900 opens of
//! `proc/cpuinfo`, read one byte each, grew the daemon by 55 MB before snapshots were shared.
//! Many files come out the same on every read of a container (cpuinfo, the CPU lists,
//! limits), so a new rendering equal to one of the file's last few is replaced by it, and
//! those opens share one allocation.

use std::sync::Arc;

/// Distinct recent renderings kept per file: a few containers reading one file at once.
const SLOTS: usize = 4;

/// A file's last few distinct renderings.
#[derive(Default)]
pub struct Recent {
    slots: [Option<Arc<[u8]>>; SLOTS],
    next: usize,
}

impl Recent {
    /// `bytes` as a shared snapshot: one of the recent ones when equal, else a new one that
    /// takes the oldest slot.
    pub fn share(&mut self, bytes: Vec<u8>) -> Arc<[u8]> {
        if let Some(same) = self
            .slots
            .iter()
            .flatten()
            .find(|s| s.len() == bytes.len() && ***s == *bytes)
        {
            return same.clone();
        }
        let fresh: Arc<[u8]> = Arc::from(bytes);
        self.slots[self.next] = Some(fresh.clone());
        self.next = (self.next + 1) % SLOTS;
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_renderings_share_one_allocation() {
        let mut r = Recent::default();
        let a = r.share(b"cpu0".to_vec());
        let b = r.share(b"cpu0".to_vec());
        assert!(Arc::ptr_eq(&a, &b));
        let c = r.share(b"cpu1".to_vec());
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(&*c, b"cpu1");
    }

    #[test]
    fn only_the_last_few_are_kept() {
        let mut r = Recent::default();
        let first = r.share(b"v0".to_vec());
        for i in 1..=SLOTS {
            r.share(format!("v{i}").into_bytes());
        }
        let again = r.share(b"v0".to_vec());
        assert!(!Arc::ptr_eq(&first, &again), "v0 was pushed out");
        assert_eq!(&*again, b"v0");
    }
}
