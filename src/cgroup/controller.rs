//! The controllers lxcfs-rs reads, and how each version names them.

/// A cgroup controller whose values feed some served file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Controller {
    Memory,
    Cpu,
    Cpuacct,
    Cpuset,
    /// `blkio` on v1, `io` on v2.
    Io,
    Pids,
}

impl Controller {
    /// How many there are: the length of per-controller arrays.
    pub(crate) const COUNT: usize = 6;

    /// All of them, in index order.
    pub(crate) const ALL: [Controller; Controller::COUNT] = [
        Controller::Memory,
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Cpuset,
        Controller::Io,
        Controller::Pids,
    ];

    /// Position in per-controller arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The name in v1 mount options and `/proc/<pid>/cgroup` lines.
    pub(crate) fn v1_name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Cpuset => "cpuset",
            Controller::Io => "blkio",
            Controller::Pids => "pids",
        }
    }

    /// The name in a v2 `cgroup.controllers` file. v2 has no cpuacct: its accounting
    /// (`cpu.stat`) comes with the `cpu` controller.
    pub(crate) fn v2_name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu | Controller::Cpuacct => "cpu",
            Controller::Cpuset => "cpuset",
            Controller::Io => "io",
            Controller::Pids => "pids",
        }
    }

    /// The controller a v1 name stands for, if we read it.
    pub(crate) fn from_v1_name(name: &str) -> Option<Controller> {
        Controller::ALL.into_iter().find(|c| c.v1_name() == name)
    }
}
