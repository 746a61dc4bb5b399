//! `proc/meminfo`: the host's file with the reader's memory and swap numbers.
//! Spec: `docs/semantics.md#proc-meminfo`.

use std::io;

use super::context::{Reading, Recipe, nonempty};
use crate::render;

/// `proc/meminfo`.
pub(crate) struct Meminfo;

impl Recipe for Meminfo {
    fn content(&self, r: &Reading<'_>) -> io::Result<String> {
        let host = r.host_file("meminfo")?;
        let mem = r.memory(&host);
        let rendered = render::meminfo::render(&host, &mem, r.opts().show_swap);
        Ok(nonempty(rendered, host))
    }
}
