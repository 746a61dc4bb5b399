//! Cgroup files served as they are: pressure and slabinfo.

use super::controller::Controller;
use super::files::read_text;
use super::membership::{ReaderCgroups, Version};

impl ReaderCgroups {
    /// v2 only: the cgroup's `cpu.pressure`, `io.pressure` or `memory.pressure` text
    /// (`resource` is `"cpu"`, `"io"` or `"memory"`), as it is. Only when that controller lives
    /// on v2: on a hybrid host the unified cgroup a reader is in is often not its container's
    /// (e.g. a service's), so its pressure would describe something else. `None` elsewhere, for
    /// the root (whose pressure is the host's, served from `/proc/pressure`), or unreadable.
    pub fn pressure(&self, resource: &str) -> Option<String> {
        let (controller, file) = match resource {
            "cpu" => (Controller::Cpu, "cpu.pressure"),
            "io" => (Controller::Io, "io.pressure"),
            "memory" => (Controller::Memory, "memory.pressure"),
            _ => return None,
        };
        let cg = self.dir(controller)?;
        if cg.version != Version::V2 || cg.is_root {
            return None;
        }
        nonempty(read_text(&cg.file(file)))
    }

    /// v1 `memory.kmem.slabinfo` text when present, not empty and the cgroup is not the root;
    /// else `None`.
    pub fn slabinfo(&self) -> Option<String> {
        let cg = self.dir(Controller::Memory)?;
        if cg.version != Version::V1 || cg.is_root {
            return None;
        }
        nonempty(read_text(&cg.file("memory.kmem.slabinfo")))
    }
}

/// An empty file says nothing about the cgroup (kernels since 5.x leave v1
/// `memory.kmem.slabinfo` empty): the host file is then the better answer.
fn nonempty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.trim().is_empty())
}
