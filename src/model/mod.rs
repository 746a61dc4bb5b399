//! Values that flow from the cgroup readers to the renderers.
//!
//! The cgroup layer (`crate::cgroup`) fills these from v1 or v2 files; the renderers
//! (`crate::render`) turn them plus the host's own file text into bytes. Every field that
//! could not be read is `None`, which the renderers treat as "use the host value": a missing
//! or malformed cgroup file must never turn into a zero.
//!
//! One module per kind of value; all are re-exported here.

mod cpu;
mod io;
mod load;
mod memory;
mod sysinfo;
mod tasks;

pub use cpu::{CpuLimits, CpuTime, CpuUsage};
pub use io::IoStat;
pub use load::LoadAvg;
pub(crate) use load::{FIXED_1, FSHIFT};
pub use memory::{MemStat, MemoryLimits};
pub use sysinfo::Sysinfo;
pub use tasks::TaskCounts;
