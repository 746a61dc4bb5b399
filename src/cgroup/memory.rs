//! Memory limits, usage and `memory.stat` of a reader's cgroup.

use super::controller::Controller;
use super::membership::{CgDir, ReaderCgroups, Version};
use super::value::{for_each_key_value, nonempty, parse_u64, parse_v1_limit, parse_v2_limit};
use crate::fallback;
use crate::kfile::{self, read_parsed};
use crate::model::{MemStat, MemoryLimits};

impl ReaderCgroups {
    /// Memory numbers of the reader's cgroup. Limits are the minimum over the cgroup and each
    /// ancestor up to the hierarchy's mount point, since any of them can cap it. On v1 the swap
    /// limit is `memory.memsw.limit_in_bytes` minus the memory limit (each minimised over the
    /// ancestors first) and swap usage is memsw usage minus memory usage.
    ///
    /// `with_swap` false skips the swap files (their fields are then `None`): when no swap
    /// is shown (`-u`, or a host without swap) they would be read for nothing.
    ///
    /// Never fails: an unreadable value is `None` in the result (noted as a fallback).
    pub fn memory(&self, with_swap: bool) -> MemoryLimits {
        match self.dir(Controller::Memory) {
            Some(cg) if cg.version == Version::V2 => v2(cg, with_swap),
            Some(cg) => v1(cg, with_swap),
            None => MemoryLimits::default(),
        }
    }

    /// v1 `memory.kmem.slabinfo` text when present, not empty (kernels since 5.x leave it
    /// empty) and the cgroup is not the root; else `None`.
    pub fn slabinfo(&self) -> Option<String> {
        let cg = self.dir(Controller::Memory)?;
        if cg.version != Version::V1 || cg.is_root {
            return None;
        }
        nonempty(fallback::ok(kfile::read_text(
            &cg.file("memory.kmem.slabinfo"),
        )))
    }
}

fn v2(cg: &CgDir, with_swap: bool) -> MemoryLimits {
    let mut mem = MemoryLimits {
        limit: min_limit(cg, "memory.max", parse_v2_limit),
        usage: fallback::ok(read_parsed(&cg.file("memory.current"), parse_u64)),
        stat: read_stat(cg, parse_memory_stat_v2),
        ..MemoryLimits::default()
    };
    if with_swap {
        mem.swap_limit = min_limit(cg, "memory.swap.max", parse_v2_limit);
        mem.swap_usage = fallback::ok(read_parsed(&cg.file("memory.swap.current"), parse_u64));
    }
    mem
}

fn v1(cg: &CgDir, with_swap: bool) -> MemoryLimits {
    let limit = min_limit(cg, "memory.limit_in_bytes", parse_v1_limit);
    let usage = fallback::ok(read_parsed(&cg.file("memory.usage_in_bytes"), parse_u64));
    let stat = read_stat(cg, parse_memory_stat_v1);
    if !with_swap {
        return MemoryLimits {
            limit,
            usage,
            stat,
            ..MemoryLimits::default()
        };
    }
    // memsw caps memory + swap, so what is left for swap is memsw minus the memory limit; with
    // no memory limit, swap alone can take all of memsw.
    let memsw_limit = min_limit(cg, "memory.memsw.limit_in_bytes", parse_v1_limit);
    let memsw_usage = fallback::ok(read_parsed(
        &cg.file("memory.memsw.usage_in_bytes"),
        parse_u64,
    ));
    MemoryLimits {
        limit,
        usage,
        swap_limit: memsw_limit.map(|ms| ms.saturating_sub(limit.unwrap_or(0))),
        swap_usage: match (memsw_usage, usage) {
            (Some(both), Some(mem)) => Some(both.saturating_sub(mem)),
            _ => None,
        },
        stat,
    }
}

/// The smallest limit in `name` over the cgroup and its ancestors. A level whose file is
/// missing or bad limits nothing (a v2 controller not enabled there has no file at all).
fn min_limit(
    cg: &CgDir,
    name: &str,
    parse: fn(&str) -> Result<Option<u64>, String>,
) -> Option<u64> {
    cg.limit_dirs()
        .filter_map(|dir| fallback::ok(read_parsed(&dir.join(name), parse)).flatten())
        .min()
}

/// Maps a `memory.stat` key to its field.
type Slot = for<'a> fn(&'a mut MemStat, &str) -> Option<&'a mut Option<u64>>;

/// Reads `memory.stat` with `parse` (v1 or v2).
fn read_stat(cg: &CgDir, parse: fn(&str) -> MemStat) -> MemStat {
    let parsed = read_parsed(&cg.file("memory.stat"), |text| Ok::<_, String>(parse(text)));
    fallback::ok(parsed).unwrap_or_default()
}

/// Parses the text of a v2 `memory.stat` (public for the benchmarks; no I/O).
pub fn parse_memory_stat_v2(text: &str) -> MemStat {
    parse_stat(text, v2_slot)
}

/// Parses the text of a v1 `memory.stat`, keeping its `total_` keys (public for the
/// benchmarks; no I/O).
pub fn parse_memory_stat_v1(text: &str) -> MemStat {
    parse_stat(text, v1_slot)
}

/// Stores each key of `memory.stat` text that `slot` maps.
fn parse_stat(text: &str, slot: Slot) -> MemStat {
    let mut stat = MemStat::default();
    for_each_key_value(text, |key, value| {
        if let Some(field) = slot(&mut stat, key) {
            *field = Some(value);
        }
    });
    stat
}

/// Where a v2 `memory.stat` key goes. Exact names only: `file` is not `file_mapped`.
fn v2_slot<'a>(s: &'a mut MemStat, key: &str) -> Option<&'a mut Option<u64>> {
    Some(match key {
        "anon" => &mut s.anon,
        "file" => &mut s.file,
        "shmem" => &mut s.shmem,
        "active_anon" => &mut s.active_anon,
        "inactive_anon" => &mut s.inactive_anon,
        "active_file" => &mut s.active_file,
        "inactive_file" => &mut s.inactive_file,
        "unevictable" => &mut s.unevictable,
        "file_mapped" => &mut s.mapped,
        "file_dirty" => &mut s.dirty,
        "file_writeback" => &mut s.writeback,
        "anon_thp" => &mut s.anon_thp,
        "slab_reclaimable" => &mut s.slab_reclaimable,
        "slab_unreclaimable" => &mut s.slab_unreclaimable,
        "kernel_stack" => &mut s.kernel_stack,
        "pagetables" => &mut s.pagetables,
        _ => return None,
    })
}

/// Where a v1 `memory.stat` key goes. Only the `total_` keys, which include the children
/// (the plain ones count the cgroup's own pages only), and exact names only: `total_rss` is
/// not `total_rss_huge`.
fn v1_slot<'a>(s: &'a mut MemStat, key: &str) -> Option<&'a mut Option<u64>> {
    Some(match key {
        "total_rss" => &mut s.anon,
        "total_cache" => &mut s.file,
        "total_shmem" => &mut s.shmem,
        "total_active_anon" => &mut s.active_anon,
        "total_inactive_anon" => &mut s.inactive_anon,
        "total_active_file" => &mut s.active_file,
        "total_inactive_file" => &mut s.inactive_file,
        "total_unevictable" => &mut s.unevictable,
        "total_mapped_file" => &mut s.mapped,
        "total_dirty" => &mut s.dirty,
        "total_writeback" => &mut s.writeback,
        "total_rss_huge" => &mut s.anon_thp,
        _ => return None,
    })
}
