//! `proc/pressure/{cpu,io,memory}`: the cgroup's own pressure file on cgroup v2, else the
//! host's.
//! Spec: `docs/semantics.md#proc-pressure`.

use std::io;

use super::context::{Reading, Recipe};
use crate::cgroup::Psi;

/// `proc/pressure/<resource>`.
pub(crate) struct Pressure(pub(crate) Psi);

impl Recipe for Pressure {
    fn content(&self, r: &Reading<'_>) -> io::Result<String> {
        match r.cgroups().and_then(|cg| cg.pressure(self.0)) {
            Some(text) => Ok(text),
            None => r.host_file(&format!("pressure/{}", self.0.name())),
        }
    }
}
