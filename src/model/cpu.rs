//! CPU limits and CPU time of a reader's cgroup.

use std::collections::BTreeMap;

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
