//! `proc/cpuinfo`: the host's blocks of the CPUs the reader is shown (the host's file read at
//! most every [`CPUINFO_FRESH_FOR`], see `shared_host`).
//!
//! [`CPUINFO_FRESH_FOR`]: super::shared_host::CPUINFO_FRESH_FOR
//! Spec: `docs/semantics.md#proc-cpuinfo`.

use std::io;

use super::context::{Reading, Recipe, nonempty};
use crate::render;

/// `proc/cpuinfo`.
pub(crate) struct Cpuinfo;

impl Recipe for Cpuinfo {
    fn content(&self, r: &Reading<'_>) -> io::Result<String> {
        let host = r.src.cpuinfo.get(&r.src.host)?;
        let (shown, online) = r.shown_cpus();
        if shown == online {
            return Ok(host.to_string());
        }
        Ok(nonempty(
            render::cpuinfo::render(&host, &shown),
            host.to_string(),
        ))
    }
}
