//! Memory numbers of a reader's cgroup.

/// Memory numbers of a reader's cgroup, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Smallest memory limit over the cgroup and its ancestors; `None` when none is set.
    pub limit: Option<u64>,
    /// Memory in use by the cgroup (`memory.current` / `memory.usage_in_bytes`).
    pub usage: Option<u64>,
    /// Smallest swap limit over the cgroup and its ancestors (v2 `memory.swap.max`;
    /// v1 `memory.memsw.limit_in_bytes` minus the memory limit); `None` when none is set.
    pub swap_limit: Option<u64>,
    /// Swap in use by the cgroup (v2 `memory.swap.current`; v1 memsw usage minus usage).
    pub swap_usage: Option<u64>,
    /// The cgroup's `memory.stat`, under v2-style names.
    pub stat: MemStat,
}

/// `memory.stat` values under one set of names for both cgroup versions, in bytes.
/// `None` where the cgroup's file has no such key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemStat {
    /// v2 `anon`, v1 `total_rss`.
    pub anon: Option<u64>,
    /// v2 `file`, v1 `total_cache`.
    pub file: Option<u64>,
    /// v2 `shmem`, v1 `total_shmem`.
    pub shmem: Option<u64>,
    /// v2 `active_anon`, v1 `total_active_anon`.
    pub active_anon: Option<u64>,
    /// v2 `inactive_anon`, v1 `total_inactive_anon`.
    pub inactive_anon: Option<u64>,
    /// v2 `active_file`, v1 `total_active_file`.
    pub active_file: Option<u64>,
    /// v2 `inactive_file`, v1 `total_inactive_file`.
    pub inactive_file: Option<u64>,
    /// v2 `unevictable`, v1 `total_unevictable`.
    pub unevictable: Option<u64>,
    /// v2 `file_mapped`, v1 `total_mapped_file`.
    pub mapped: Option<u64>,
    /// v2 `file_dirty`, v1 `total_dirty`.
    pub dirty: Option<u64>,
    /// v2 `file_writeback`, v1 `total_writeback`.
    pub writeback: Option<u64>,
    /// v2 `anon_thp`, v1 `total_rss_huge`.
    pub anon_thp: Option<u64>,
    /// v2 `slab_reclaimable` (no v1 equivalent).
    pub slab_reclaimable: Option<u64>,
    /// v2 `slab_unreclaimable` (no v1 equivalent).
    pub slab_unreclaimable: Option<u64>,
    /// v2 `kernel_stack` (no v1 equivalent).
    pub kernel_stack: Option<u64>,
    /// v2 `pagetables` (no v1 equivalent).
    pub pagetables: Option<u64>,
}
