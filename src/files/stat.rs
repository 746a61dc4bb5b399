//! `proc/stat`: CPU lines of the CPUs the reader is shown, from its cgroup's CPU time, and
//! its cgroup's running and blocked tasks.
//! Spec: `docs/semantics.md#proc-stat`.

use std::io;

use super::context::{Reading, Recipe, nonempty};
use crate::cgroup::ReaderCgroups;
use crate::model::CpuUsage;
use crate::render;

/// `proc/stat`.
pub(crate) struct Stat;

impl Recipe for Stat {
    fn content(&self, r: &Reading<'_>) -> io::Result<String> {
        let host = r.host_file("stat")?;
        let (shown, online) = r.shown_cpus();
        let cg = r.cgroups();
        let usage = cg.map(ReaderCgroups::cpu_usage).unwrap_or_default();
        if usage == CpuUsage::Unknown && shown == online {
            return Ok(host);
        }
        let tasks = cg
            .and_then(ReaderCgroups::task_dir)
            .map(|dir| r.src.tasks.count(&dir).0);
        let rendered = render::stat::render(&host, &shown, &usage, tasks, r.src.user_hz);
        Ok(nonempty(rendered, host))
    }
}
