//! `proc/uptime`: the age of the reader's pid-namespace init, and its CPUs' idle time.
//! Spec: `docs/semantics.md#proc-uptime`.

use std::io;

use super::context::{Reading, Recipe};
use crate::error_chain::Chain;
use crate::fallback;
use crate::render;

/// `proc/uptime`.
pub(crate) struct Uptime;

impl Recipe for Uptime {
    fn content(&self, r: &Reading<'_>) -> io::Result<String> {
        let init = match r.src.pidns.init_of(r.pid) {
            Ok(Some(init)) if r.pid != 0 => init,
            Ok(_) => return r.host_file("uptime"),
            Err(e) => {
                fallback::note(format_args!("host uptime for pid {}: {}", r.pid, Chain(&e)));
                return r.host_file("uptime");
            }
        };
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
            .map_err(io::Error::from)?;
        let now = now.tv_sec() as f64 + now.tv_nsec() as f64 / 1e9;
        let age = now - init.start_ticks as f64 / r.src.user_hz as f64;
        let (shown, _) = r.shown_cpus();
        let busy = r
            .cgroups()
            .and_then(|cg| cg.cpu_usage().total_busy_ns())
            .map(|ns| ns as f64 / 1e9);
        Ok(render::uptime::render(age, shown.len(), busy))
    }
}
