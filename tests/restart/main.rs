//! Restart, upgrade and crash without one failed read in any container (docs:
//! restart.md §8). Real runc containers read the daemon's files all along with the probe's
//! `loop` mode while the test disrupts the daemon: `--takeover` upgrades between two builds,
//! SIGKILLs of the worker (some with a READ held in flight by a failpoint), a worker without
//! FUSE_NOTIFY_RESEND, a request that crashes the worker, a stopped worker, SIGUSR1 and
//! SIGUSR2, and supervisor and worker killed together with their descriptors kept in a
//! stand-in for systemd's fd store. Each test reports the failed reads by errno and the
//! longest stall, and asserts on them.
//!
//! Needs root, /dev/fuse, runc, busybox-static, gcc and CPUs 0 and 1 (skipped otherwise,
//! failing when CI is set). The failpoint tests need a debug build of the daemon.
//!
//! - [`supervisor`]: the two builds, failpoints (the reading containers, the supervisor's
//!   `status` and held reads are the shared [`common::loads`] and [`common::status`]);
//! - [`harness`]: the harness proven against the daemon as it is: checks that pass, and each
//!   check made to fail;
//! - [`upgrade`]: `--takeover` upgrades, SIGUSR1 re-execution, the SIGUSR2 toggle;
//! - [`crash`]: the worker killed, without RESEND, crashed by a request, stopped;
//! - [`systemd`]: supervisor and worker lost, the connection kept in a notify-socket fd store.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod crash;
mod harness;
mod supervisor;
mod systemd;
mod upgrade;

use std::time::Duration;

use common::scene::{Scene, monotonic_ms, must, stuck};

/// Between two disruptions: long enough for every probe to read a few rounds, short enough
/// to keep 20 disruptions quick.
const PAUSE: Duration = Duration::from_millis(250);
