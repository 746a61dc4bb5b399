//! Fixture-tree tests: fake `/proc` and `/sys/fs/cgroup` trees in temporary directories.

mod hierarchy;
mod hybrid;
mod interrupted;
mod real;
mod tasks;
mod v1;
mod v2;

pub(crate) use crate::testutil::Fixture;

use crate::cgroup::{Hierarchies, ReaderCgroups};

/// The cgroups of `pid` in the tree `fx`, as a read resolves them.
fn cgroups_of(fx: &Fixture, pid: u32) -> ReaderCgroups {
    Hierarchies::discover(&fx.host)
        .unwrap()
        .of_pid(&fx.host, pid)
        .unwrap()
}
