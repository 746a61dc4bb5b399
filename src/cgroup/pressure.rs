//! Pressure stall information of a reader's cgroup, served as it is.

use super::controller::Controller;
use super::membership::{ReaderCgroups, Version};
use super::value::nonempty;
use crate::fallback;
use crate::kfile;

/// A resource with a pressure file: `/proc/pressure/<name>` on the host, `<name>.pressure`
/// in a cgroup v2 directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Psi {
    /// CPU pressure.
    Cpu,
    /// I/O pressure.
    Io,
    /// Memory pressure.
    Memory,
}

impl Psi {
    /// The resource's name in both file names: `cpu`, `io`, `memory`.
    pub fn name(self) -> &'static str {
        match self {
            Psi::Cpu => "cpu",
            Psi::Io => "io",
            Psi::Memory => "memory",
        }
    }

    /// The controller whose cgroup holds the file.
    fn controller(self) -> Controller {
        match self {
            Psi::Cpu => Controller::Cpu,
            Psi::Io => Controller::Io,
            Psi::Memory => Controller::Memory,
        }
    }

    /// The file in a cgroup v2 directory.
    fn cgroup_file(self) -> &'static str {
        match self {
            Psi::Cpu => "cpu.pressure",
            Psi::Io => "io.pressure",
            Psi::Memory => "memory.pressure",
        }
    }
}

impl ReaderCgroups {
    /// v2 only: the cgroup's `cpu.pressure`, `io.pressure` or `memory.pressure` text, as it
    /// is. Only when that controller lives on v2: on a hybrid host the unified cgroup a reader
    /// is in is often not its container's (e.g. a service's), so its pressure would describe
    /// something else. `None` elsewhere, for the root (whose pressure is the host's, served from
    /// `/proc/pressure`), or unreadable or empty.
    pub fn pressure(&self, psi: Psi) -> Option<String> {
        let cg = self.dir(psi.controller())?;
        if cg.version != Version::V2 || cg.is_root {
            return None;
        }
        nonempty(fallback::ok(kfile::read_text(&cg.file(psi.cgroup_file()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_files_agree() {
        for psi in [Psi::Cpu, Psi::Io, Psi::Memory] {
            assert_eq!(psi.cgroup_file(), format!("{}.pressure", psi.name()));
        }
        assert_eq!(Psi::Io.controller(), Controller::Io);
    }
}
