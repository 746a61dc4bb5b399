//! `proc/diskstats`: the devices the reader's cgroup did I/O on, with its own counts.
//! Spec: `docs/semantics.md#proc-diskstats`.

use std::io;

use super::context::{Reading, Recipe, nonempty};
use crate::cgroup::ReaderCgroups;
use crate::render;

/// `proc/diskstats`.
pub(crate) struct Diskstats;

impl Recipe for Diskstats {
    fn content(&self, r: &Reading<'_>) -> io::Result<String> {
        let host = r.host_file("diskstats")?;
        let io = r.cgroups().map(ReaderCgroups::io).unwrap_or_default();
        if io.is_empty() {
            return Ok(host);
        }
        Ok(nonempty(render::diskstats::render(&host, &io), host))
    }
}
