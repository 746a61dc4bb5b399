//! What limits apply to a reader: cgroup hierarchies, the reader's cgroups, and the values
//! read from them.
//!
//! [`Hierarchies`] is built once at start from mountinfo; [`Hierarchies::of_pid`] resolves a
//! reader's cgroup directories per controller (v1, v2 or both on a hybrid host) into
//! [`ReaderCgroups`], whose methods read the values into the `crate::model` types. Those
//! methods never fail: whatever cannot be read is `None` and the renderers use the host value.
//!
//! One module per concern: `mountinfo` (where hierarchies are), `membership` (which cgroup a
//! reader is in), `value` (number formats), then one per controller family.

mod controller;
mod cpu;
mod cpuacct;
mod error;
pub(crate) mod files;
mod io;
mod membership;
mod memory;
mod mountinfo;
mod passthrough;
mod tasks;
mod value;

#[cfg(test)]
pub(crate) mod tests;

pub use error::CgroupError;
pub use membership::ReaderCgroups;
pub use mountinfo::Hierarchies;
pub(crate) use mountinfo::parse_mounts;
pub use tasks::count_tasks;
