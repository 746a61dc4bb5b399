//! Re-attach: after the FUSE connection was lost (supervisor and worker killed, nothing
//! holding it), a fresh lxcfs-rs on the same mount point heals every running container by
//! re-binding its live mount over each dead one, in every mount namespace; and a migration
//! from the C lxcfs without restarting a container (docs: restart.md §5, §7 item 12, §8 test
//! 4). Real runc containers read the daemon's files all along with the probe's `loop` mode
//! (reopening its kept descriptor after a failure), so each reports when its reads failed
//! and when they recovered; each namespace's `/proc/<pid>/mountinfo` shows which connection
//! every bind reaches.
//!
//! Needs root, /dev/fuse, runc, busybox-static, gcc and CPUs 0 and 1, and `lxcfs` for the
//! migration (skipped otherwise, failing when CI is set).
//!
//! - [`fleet`]: the containers: plain, user namespace with a read-only root, directory
//!   binds, a nested mount and pid namespace, a nested user namespace (locked mounts), and
//!   one started during the outage;
//! - [`namespaces`]: their mount namespaces, and what their lxcfs mounts show;
//! - [`report`]: `lxcfs-rs reattach --json` and whether it says what mountinfo shows;
//! - [`outage`]: the fleet through an outage, and the checks of what the readers saw;
//! - [`reference`]: the test's own re-bind, to prove the harness while the daemon lacks it;
//! - [`heal`]: supervisor and worker SIGKILLed, then a fresh start;
//! - [`migrate`]: the C lxcfs stopped, lxcfs-rs started;
//! - [`by_hand`]: `lxcfs-rs reattach` with nothing dead;
//! - [`harness`]: the harness proven: a reference pass passes every check, no pass fails
//!   each, and the comparisons on made-up tables.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod by_hand;
mod fleet;
mod harness;
mod heal;
mod migrate;
mod namespaces;
mod outage;
mod reference;
mod report;
