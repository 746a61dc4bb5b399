//! What each group of readers may make the daemon hold for its open files.
//!
//! An open file keeps what its reader was served at offset 0 until the reader reaches the
//! end, so that reads in small chunks slice one version. A container may hold as many
//! descriptors as its limit allows (Docker's default is 1,048,576), and the daemon runs with
//! OOMScoreAdjust -1000: left unbounded, one container reading a byte from each of its
//! descriptors would make the kernel kill everything else before the daemon. So everything
//! kept is charged to the reader's [`Group`] (its cgroup, as the provider tells), and a charge
//! that would take the group, or all groups together, over their bound is refused: the read
//! is served all the same, only nothing is kept for it (see `LxcFs::read`).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use log::warn;
use parking_lot::Mutex;

use super::provider::Group;
use super::snapshots::Recent;

const MIB: usize = 1 << 20;

/// The bounds on what is kept, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// What one group may hold.
    pub group: usize,
    /// What all groups together may hold.
    pub total: usize,
    /// The last part of `total`, kept for groups holding less than `light`: a container
    /// whose descriptors are spread over cgroups it creates itself (with delegation) does
    /// not take it with a few full groups; it would have to spread over `reserve / light`
    /// more groups, each under `light`. The bound is per memory cgroup, not per container.
    pub reserve: usize,
    /// What a group holding little holds at most.
    pub light: usize,
}

impl Limits {
    /// 16 MiB per group, 256 MiB in all, the last 64 MiB for groups holding under 1 MiB. A
    /// container reading its files as programs do holds a few KiB at a time (one file per
    /// reader in the middle of a read); 16 MiB is about 10,000 half-read `/proc/meminfo`s,
    /// or 100 half-read `/proc/cpuinfo`s of a 128-CPU host.
    pub const DEFAULT: Limits = Limits {
        group: 16 * MIB,
        total: 256 * MIB,
        reserve: 64 * MIB,
        light: MIB,
    };
}

/// Why a charge was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Over {
    /// The group holds its bound.
    Group,
    /// All groups together hold what groups holding more than a little may.
    Shared,
    /// All groups together hold the total.
    Total,
}

/// What all groups hold, and the bounds.
struct Totals {
    held: AtomicUsize,
    limits: Limits,
}

/// One group's account.
pub struct Account {
    group: Group,
    held: AtomicUsize,
    /// Whether the group was told (in the log) that it is over: once for as long as it holds
    /// anything, not once per read.
    warned: AtomicBool,
    totals: Arc<Totals>,
    /// The group's last snapshot of each file, which its opens with equal content share.
    pub(super) recent: Mutex<Recent>,
}

impl Account {
    /// Charges `bytes` to the group, or `None` when that would take it (or all groups) over
    /// a bound: logged the first time.
    pub fn charge(self: &Arc<Self>, bytes: usize) -> Option<Charge> {
        let limits = &self.totals.limits;
        let held = self.held.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let total = self.totals.held.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let over = if held > limits.group {
            Some(Over::Group)
        } else if total > limits.total {
            Some(Over::Total)
        } else if total > limits.total.saturating_sub(limits.reserve) && held > limits.light {
            Some(Over::Shared)
        } else {
            None
        };
        let Some(over) = over else {
            crate::stats::kept_add(bytes);
            return Some(Charge {
                account: self.clone(),
                bytes,
            });
        };
        self.held.fetch_sub(bytes, Ordering::Relaxed);
        self.totals.held.fetch_sub(bytes, Ordering::Relaxed);
        crate::stats::kept_refused();
        if !self.warned.swap(true, Ordering::Relaxed) {
            self.warn(over, held - bytes, total - bytes);
        }
        None
    }

    fn warn(&self, over: Over, held: usize, total: usize) {
        let l = &self.totals.limits;
        let why = match over {
            Over::Group => format!("the bound of one group is {}", l.group),
            Over::Total => format!(
                "all groups together hold {total} bytes, the daemon's bound of {}",
                l.total
            ),
            Over::Shared => format!(
                "all groups together hold {total} bytes: the last {} of the daemon's {} are \
                 kept for groups holding under {}",
                l.reserve, l.total, l.light
            ),
        };
        warn!(
            "{}: its readers hold {held} bytes for their open files, {why}; until they close \
             some, their reads are served without keeping what they read (a read past the \
             start makes the file again and slices it)",
            self.group
        );
    }

    /// What the group holds, in bytes.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

/// Bytes charged to a group, given back when dropped.
pub struct Charge {
    account: Arc<Account>,
    bytes: usize,
}

impl Charge {
    /// The account charged.
    #[cfg(test)]
    pub fn account(&self) -> &Arc<Account> {
        &self.account
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        crate::stats::kept_sub(self.bytes);
        self.account.held.fetch_sub(self.bytes, Ordering::Relaxed);
        self.account
            .totals
            .held
            .fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

const SHARDS: usize = 16;

/// Live groups of one shard, and when to sweep out those that hold nothing any more.
#[derive(Default)]
struct Shard {
    groups: HashMap<Group, Weak<Account>>,
    sweep_at: usize,
}

/// The accounts of every group holding something. An account lives as long as some charge
/// to it does: a group that holds nothing costs nothing, and starts afresh (its warning
/// included) when it next keeps something.
pub struct Accounts {
    shards: [Mutex<Shard>; SHARDS],
    totals: Arc<Totals>,
}

impl Accounts {
    /// No group holding anything, bounded by `limits`.
    pub fn new(limits: Limits) -> Self {
        Accounts {
            shards: std::array::from_fn(|_| Mutex::default()),
            totals: Arc::new(Totals {
                held: AtomicUsize::new(0),
                limits,
            }),
        }
    }

    /// The account of `group`.
    pub fn of(&self, group: Group) -> Arc<Account> {
        let mut h = fnv::FnvHasher::default();
        group.hash(&mut h);
        let mut shard = self.shards[h.finish() as usize % SHARDS].lock();
        if let Some(account) = shard.groups.get(&group).and_then(Weak::upgrade) {
            return account;
        }
        // Dead entries (groups that came and went: containers, readers' short-lived
        // cgroups) are swept when the map has doubled since the last sweep.
        if shard.groups.len() >= shard.sweep_at {
            shard.groups.retain(|_, a| a.strong_count() > 0);
            shard.sweep_at = 2 * shard.groups.len() + 16;
        }
        let account = Arc::new(Account {
            group: group.clone(),
            held: AtomicUsize::new(0),
            warned: AtomicBool::new(false),
            totals: self.totals.clone(),
            recent: Mutex::default(),
        });
        shard.groups.insert(group, Arc::downgrade(&account));
        account
    }

    /// What all groups hold, in bytes.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.totals.held.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limits = Limits {
        group: 1000,
        total: 3000,
        reserve: 1000,
        light: 100,
    };

    fn group(name: &str) -> Group {
        Group::new(name)
    }

    #[test]
    fn charges_are_given_back_when_dropped() {
        let a = Accounts::new(SMALL);
        let acc = a.of(group("a"));
        let c1 = acc.charge(300).unwrap();
        let c2 = acc.charge(200).unwrap();
        assert_eq!((acc.held(), a.held()), (500, 500));
        drop(c1);
        assert_eq!((acc.held(), a.held()), (200, 200));
        drop(c2);
        assert_eq!((acc.held(), a.held()), (0, 0));
    }

    #[test]
    fn a_group_over_its_bound_is_refused_and_others_are_not() {
        let a = Accounts::new(SMALL);
        let hog = a.of(group("hog"));
        let kept: Vec<Charge> = (0..10).map_while(|_| hog.charge(150)).collect();
        assert_eq!(kept.len(), 6, "1000 bytes hold six charges of 150");
        assert!(hog.charge(150).is_none());
        assert_eq!(hog.held(), 900, "a refused charge leaves nothing behind");
        let other = a.of(group("other"));
        assert!(other.charge(150).is_some(), "another group is not refused");
        drop(kept);
        assert!(
            hog.charge(150).is_some(),
            "room again once it gave some back"
        );
    }

    #[test]
    fn the_total_keeps_a_reserve_for_groups_holding_little() {
        let a = Accounts::new(SMALL);
        let heavy: Vec<Arc<Account>> = (0..3).map(|i| a.of(group(&format!("h{i}")))).collect();
        let mut held: Vec<Charge> = heavy.iter().map(|g| g.charge(600).unwrap()).collect();
        held.push(heavy[0].charge(200).unwrap());
        assert_eq!(a.held(), 2000, "the total less the reserve");
        assert!(
            heavy[0].charge(50).is_none(),
            "past it, heavy groups are refused"
        );
        let light = a.of(group("light"));
        held.extend((0..2).map(|_| light.charge(50).unwrap()));
        assert!(
            light.charge(50).is_none(),
            "a group keeps up to 100 from the reserve"
        );
        let lights: Vec<Charge> = (0..20)
            .map_while(|i| a.of(group(&format!("l{i}"))).charge(90))
            .collect();
        assert_eq!(lights.len(), 10);
        assert_eq!(a.held(), 3000, "the total, never passed");
    }

    #[test]
    fn one_account_per_group_for_as_long_as_it_holds_something() {
        let a = Accounts::new(SMALL);
        let c = a.of(group("g")).charge(10).unwrap();
        assert!(Arc::ptr_eq(c.account(), &a.of(group("g"))));
        let weak = Arc::downgrade(c.account());
        drop(c);
        assert!(
            weak.upgrade().is_none(),
            "a group holding nothing has no account"
        );
        for i in 0..1000 {
            a.of(group(&format!("gone {i}")));
        }
        let entries: usize = a.shards.iter().map(|s| s.lock().groups.len()).sum();
        assert!(
            entries < 500,
            "groups that came and went are swept: {entries}"
        );
    }
}
