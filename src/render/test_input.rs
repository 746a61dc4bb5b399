//! Inputs shared by the renderers' unit tests.

use crate::model::{MemStat, MemoryLimits};

/// A host's `/proc/meminfo` without swap.
pub(crate) const HOST: &str = include_str!("../../tests/fixtures/render/meminfo");
/// A host's `/proc/meminfo` with 4 GiB of swap.
pub(crate) const HOST_SWAP: &str = include_str!("../../tests/fixtures/render/meminfo-swap");
/// One mebibyte.
pub(crate) const MIB: u64 = 1024 * 1024;
/// One gibibyte.
pub(crate) const GIB: u64 = 1024 * MIB;

/// A cgroup with memory limit `limit`, usage `usage`, `memory.stat` `stat` and no swap limit.
pub(crate) fn limited(limit: u64, usage: Option<u64>, stat: MemStat) -> MemoryLimits {
    MemoryLimits {
        limit: Some(limit),
        usage,
        swap_limit: None,
        swap_usage: None,
        stat,
    }
}
