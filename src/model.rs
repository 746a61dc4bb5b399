//! Values that flow from the cgroup readers to the renderers.
//!
//! The cgroup layer (`crate::cgroup`) fills these from v1 or v2 files; the renderers
//! (`crate::render`) turn them plus the host's own file text into bytes. Every field that
//! could not be read is `None`, which the renderers treat as "use the host value": a missing
//! or malformed cgroup file must never turn into a zero.

use std::collections::BTreeMap;

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

/// Which CPUs a reader may use and how much of them.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuLimits {
    /// Host ids of the visible CPUs (effective cpuset ∩ host online), ascending, never
    /// empty: an unreadable or empty cpuset gives the host's online CPUs.
    pub visible: Vec<u32>,
    /// Smallest CFS quota over the cgroup and its ancestors, as a number of CPUs
    /// (quota / period); `None` when no quota is set anywhere.
    pub quota_cpus: Option<f64>,
}

impl CpuLimits {
    /// The CPUs to show: all visible ones, or under the CPU-quota view (`--enable-cfs`)
    /// the first `min(visible, ceil(quota))` of them (at least one).
    pub fn shown(&self, quota_view: bool) -> &[u32] {
        let n = self.visible.len();
        let count = match (quota_view, self.quota_cpus) {
            (true, Some(q)) if q.is_finite() && q > 0.0 => (q.ceil() as usize).clamp(1, n.max(1)),
            _ => n,
        };
        &self.visible[..count.min(n)]
    }
}

/// User and system CPU time, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// Time spent in user mode.
    pub user_ns: u64,
    /// Time spent in kernel mode.
    pub system_ns: u64,
}

impl CpuTime {
    /// User plus system time.
    pub fn busy_ns(&self) -> u64 {
        self.user_ns.saturating_add(self.system_ns)
    }
}

/// CPU time used by a cgroup (its descendants included).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CpuUsage {
    /// v1 `cpuacct.usage_all` (or `usage_percpu`, all counted as user): per host CPU id.
    PerCpu(BTreeMap<u32, CpuTime>),
    /// v2 `cpu.stat`: a total with no per-CPU split.
    Total(CpuTime),
    /// Nothing readable.
    #[default]
    Unknown,
}

impl CpuUsage {
    /// Total busy time over all CPUs, in nanoseconds; `None` when unknown.
    pub fn total_busy_ns(&self) -> Option<u64> {
        match self {
            CpuUsage::PerCpu(m) => Some(m.values().map(CpuTime::busy_ns).sum()),
            CpuUsage::Total(t) => Some(t.busy_ns()),
            CpuUsage::Unknown => None,
        }
    }
}

/// I/O done by a cgroup on one block device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStat {
    /// Device major number.
    pub major: u32,
    /// Device minor number.
    pub minor: u32,
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Read operations completed.
    pub reads: u64,
    /// Write operations completed.
    pub writes: u64,
}

/// Task counts of a cgroup (its descendants included), from its task list and each
/// task's state in `/proc/<tid>/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskCounts {
    /// Threads in state R.
    pub running: u64,
    /// Threads in state D.
    pub blocked: u64,
    /// All threads.
    pub total: u64,
}
