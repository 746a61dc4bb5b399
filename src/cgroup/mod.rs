//! What limits apply to a reader: cgroup hierarchies, the reader's cgroups, and the values
//! read from them.
//!
//! [`Hierarchies`] is built once at start from mountinfo; [`Hierarchies::of_pid`] resolves a
//! reader's cgroup directories per controller (v1, v2 or both on a hybrid host) into
//! [`ReaderCgroups`], whose methods read the values into the `crate::model` types. Those
//! methods never fail: whatever cannot be read is `None` (noted in `crate::fallback`) and the
//! renderers use the host value. Which files are read, per version: `docs/semantics.md#limits-reading-cgroup-values`.
//!
//! One module per concern: `mountinfo` (where hierarchies are), `membership` (which cgroup a
//! reader is in), `value` (number formats), then one per controller family (`memory`, `cpu`,
//! `cpuacct`, `io`, `pressure`, `tasks`, with `task_cache` keeping recent task counts). All
//! file reads go through `crate::kfile`.

mod controller;
mod cpu;
mod cpuacct;
mod error;
mod io;
mod membership;
mod memory;
mod mountinfo;
mod pressure;
mod task_cache;
mod tasks;
mod value;

#[cfg(test)]
pub(crate) mod tests;

pub use error::CgroupError;
pub use membership::ReaderCgroups;
pub use memory::{parse_memory_stat_v1, parse_memory_stat_v2};
pub use mountinfo::Hierarchies;
pub use pressure::Psi;
pub use task_cache::{FRESH_FOR, TaskCache};
pub use tasks::{Newest, count_tasks};
pub use value::parse_cpu_max;
