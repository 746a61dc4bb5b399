//! `proc/slabinfo`: the cgroup's v1 `memory.kmem.slabinfo` where it says something, else the
//! host's.
//! Spec: `docs/semantics.md#proc-slabinfo`.

use std::io;

use super::context::{Reading, Recipe};
use crate::cgroup::ReaderCgroups;

/// `proc/slabinfo`.
pub(crate) struct Slabinfo;

impl Recipe for Slabinfo {
    fn content(&self, r: &Reading<'_>) -> io::Result<String> {
        match r.cgroups().and_then(ReaderCgroups::slabinfo) {
            Some(text) => Ok(text),
            None => r.host_file("slabinfo"),
        }
    }
}
