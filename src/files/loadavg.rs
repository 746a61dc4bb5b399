//! `proc/loadavg`: with `-l`, the load of the reader's cgroup; otherwise the host's.
//! Spec: `docs/semantics.md#proc-loadavg`.

use std::io;

use super::context::{Reading, Recipe};
use crate::cgroup::{Newest, ReaderCgroups};
use crate::reader::start_ticks;
use crate::render;

/// `proc/loadavg`.
pub(crate) struct Loadavg;

impl Recipe for Loadavg {
    fn content(&self, r: &Reading<'_>) -> io::Result<String> {
        let loads = r.src.loads.as_ref();
        let dir = loads
            .and_then(|_| r.cgroups())
            .and_then(ReaderCgroups::task_dir);
        let (Some(loads), Some(dir)) = (loads, dir) else {
            return r.host_file("loadavg");
        };
        let (tasks, newest) = r.src.tasks.count(&dir);
        let load = loads.load(&dir, tasks.running + tasks.blocked);
        // The count may be a kept one, made before the reader started; a reader is often its
        // cgroup's newest thread (a `cat`), as the kernel's last pid would be.
        let reader = start_ticks(&r.src.host, r.pid)
            .ok()
            .map(|start_ticks| Newest {
                start_ticks,
                tid: r.pid,
            });
        let last_pid = newest
            .max(reader)
            .and_then(|task| r.src.pidns.pid_as_seen_by(r.pid, task.tid))
            .unwrap_or(0);
        Ok(render::loadavg::render(
            &load,
            tasks.running,
            tasks.total,
            last_pid,
        ))
    }
}
