//! `proc/cpuinfo`: the host's blocks of the CPUs the reader is shown.
//! Spec: `docs/semantics.md#proc-cpuinfo`.

use std::io;

use super::context::{Reading, Recipe, nonempty};
use crate::render;

/// `proc/cpuinfo`.
pub(crate) struct Cpuinfo;

impl Recipe for Cpuinfo {
    fn content(&self, r: &Reading<'_>) -> io::Result<String> {
        let host = r.host_file("cpuinfo")?;
        let (shown, online) = r.shown_cpus();
        if shown == online {
            return Ok(host);
        }
        Ok(nonempty(render::cpuinfo::render(&host, &shown), host))
    }
}
