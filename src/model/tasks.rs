//! Task counts of a reader's cgroup.

/// Task counts of a cgroup (its descendants included), from its task list and each
/// task's state in `/proc/<tid>/task/<tid>/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskCounts {
    /// Threads in state R.
    pub running: u64,
    /// Threads in state D.
    pub blocked: u64,
    /// All threads.
    pub total: u64,
}
