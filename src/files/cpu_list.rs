//! `sys/devices/system/cpu/{online,possible,present,offline}`: the CPUs the reader is shown.
//! Spec: `docs/semantics.md#sys-devices-system-cpu`.

use std::io;

use super::context::{Reading, Recipe};
use crate::render;

/// `online`, `possible` and `present`.
pub(crate) struct CpuList;

impl Recipe for CpuList {
    fn content(&self, r: &Reading<'_>) -> io::Result<String> {
        let (limits, _) = r.cpu_limits();
        let quota_view = r.opts().cpus_from_quota;
        let renumbered = quota_view && limits.quota_cpus.is_some();
        Ok(render::cpu_list::render(
            limits.shown(quota_view),
            renumbered,
        ))
    }
}

/// `offline`.
pub(crate) struct Offline;

impl Recipe for Offline {
    fn content(&self, _: &Reading<'_>) -> io::Result<String> {
        Ok(render::cpu_list::render_offline())
    }
}
