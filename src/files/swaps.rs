//! `proc/swaps`: the reader's swap as one virtual device, agreeing with its meminfo.
//! Spec: `docs/semantics.md#proc-swaps`.

use std::io;

use super::context::{Reading, Recipe};
use crate::render;

/// `proc/swaps`.
pub(crate) struct Swaps;

impl Recipe for Swaps {
    fn content(&self, r: &Reading<'_>) -> io::Result<String> {
        let host = r.host_file("swaps")?;
        let meminfo = r.host_file("meminfo")?;
        let mem = r.memory(&meminfo);
        let shown = render::swap::shown(&meminfo, &mem, r.opts().show_swap);
        Ok(render::swaps::render(&host, shown))
    }
}
