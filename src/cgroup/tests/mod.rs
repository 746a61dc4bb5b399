//! Fixture-tree tests: fake `/proc` and `/sys/fs/cgroup` trees in temporary directories.

mod hierarchy;
mod hybrid;
mod interrupted;
mod real;
mod tasks;
mod v1;
mod v2;

pub(crate) use crate::testutil::Fixture;
