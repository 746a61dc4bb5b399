//! The swap a reader is shown: one rule for the Swap lines of `/proc/meminfo` and for
//! `/proc/swaps`, so both files always agree, as they do on a real machine
//! (`docs/semantics.md#proc-swaps`).

use super::host_meminfo::{host_kb, kb, limit_kb};
use crate::model::MemoryLimits;

/// Swap sizes shown to a reader, in kB.
///
/// Computed once and shared by `/proc/meminfo` and `/proc/swaps` so that both files always
/// agree, as they do on a real machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SwapKb {
    /// Swap size (SwapTotal, and the size column of `/proc/swaps`).
    pub total: u64,
    /// Swap in use (SwapTotal − SwapFree), never more than `total`.
    pub used: u64,
}

/// The swap a reader sees.
///
/// `swap_view` false (the `-u` flag) or a host without swap shows none. With no memory and no
/// swap limit the host's own numbers stand, as the rest of meminfo does then. Otherwise the
/// swap limit capped at the host's swap (no limit: the host's swap), and the cgroup's swap
/// usage capped at that (unknown usage: 0, since host usage would belong to other cgroups).
pub fn sizes(host_meminfo: &str, mem: &MemoryLimits, swap_view: bool) -> SwapKb {
    let host_total = host_kb(host_meminfo, "SwapTotal").unwrap_or(0);
    if !swap_view || host_total == 0 {
        return SwapKb::default();
    }
    if host_unchanged(host_meminfo, mem, swap_view) {
        let host_free = host_kb(host_meminfo, "SwapFree").unwrap_or(host_total);
        return SwapKb {
            total: host_total,
            used: host_total.saturating_sub(host_free),
        };
    }
    let total = mem.swap_limit.map_or(host_total, |b| kb(b).min(host_total));
    let used = mem.swap_usage.map_or(0, kb).min(total);
    SwapKb { total, used }
}

/// Whether the reader sees the host's swap unchanged (meminfo's swap lines and
/// `/proc/swaps`): swap is shown and neither a usable memory limit nor a swap limit
/// applies. The cgroup may still have usage and `memory.stat` (the root cgroup does).
pub fn host_unchanged(host_meminfo: &str, mem: &MemoryLimits, swap_view: bool) -> bool {
    swap_view && limit_kb(host_meminfo, mem).is_none() && mem.swap_limit.is_none()
}

/// The swap to show, or `None` when the host's own swap lines and `/proc/swaps` stand
/// unchanged ([`host_unchanged`]).
pub fn shown(host_meminfo: &str, mem: &MemoryLimits, swap_view: bool) -> Option<SwapKb> {
    (!host_unchanged(host_meminfo, mem, swap_view)).then(|| sizes(host_meminfo, mem, swap_view))
}

/// Whether the reader's cgroup swap files are worth reading at all: swap is shown
/// (`swap_view`, not `-u`) and the host has some. Otherwise no swap number of the cgroup can
/// reach what is served.
pub fn reads_cgroup_swap(host_meminfo: &str, swap_view: bool) -> bool {
    swap_view && host_kb(host_meminfo, "SwapTotal").unwrap_or(0) > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MemStat;

    use crate::render::test_input::{GIB, HOST, HOST_SWAP, MIB, limited};

    #[test]
    fn sizes_cover_each_case() {
        let host_total = 4194300;
        let host_used = 4194300 - 3932156;
        let none = MemoryLimits::default();
        assert_eq!(sizes(HOST_SWAP, &none, false), SwapKb::default());
        assert_eq!(
            sizes(HOST, &none, true),
            SwapKb::default(),
            "host without swap"
        );
        assert_eq!(
            sizes(HOST_SWAP, &none, true),
            SwapKb {
                total: host_total,
                used: host_used
            }
        );

        let mem_only = limited(GIB, None, MemStat::default());
        assert_eq!(
            sizes(HOST_SWAP, &mem_only, true),
            SwapKb {
                total: host_total,
                used: 0
            }
        );

        let capped = MemoryLimits {
            swap_limit: Some(1024 * GIB),
            swap_usage: Some(GIB),
            ..mem_only.clone()
        };
        assert_eq!(
            sizes(HOST_SWAP, &capped, true),
            SwapKb {
                total: host_total,
                used: 1024 * 1024
            }
        );

        let over = MemoryLimits {
            swap_limit: Some(MIB),
            swap_usage: Some(GIB),
            ..mem_only.clone()
        };
        assert_eq!(
            sizes(HOST_SWAP, &over, true),
            SwapKb {
                total: 1024,
                used: 1024
            }
        );

        let swap_only = MemoryLimits {
            swap_limit: Some(2 * MIB),
            swap_usage: Some(MIB),
            ..Default::default()
        };
        assert_eq!(
            sizes(HOST_SWAP, &swap_only, true),
            SwapKb {
                total: 2048,
                used: 1024
            }
        );
        assert_eq!(sizes("", &swap_only, true), SwapKb::default());
    }

    #[test]
    fn shown_is_none_exactly_when_the_host_swap_stands() {
        let none = MemoryLimits::default();
        assert_eq!(shown(HOST_SWAP, &none, true), None);
        assert_eq!(shown(HOST_SWAP, &none, false), Some(SwapKb::default()));
        let mem_only = limited(GIB, None, MemStat::default());
        assert!(!host_unchanged(HOST_SWAP, &mem_only, true));
        assert_eq!(
            shown(HOST_SWAP, &mem_only, true),
            Some(sizes(HOST_SWAP, &mem_only, true))
        );
        let sub_kb = limited(512, None, MemStat::default());
        assert!(
            host_unchanged(HOST_SWAP, &sub_kb, true),
            "an unusable limit is none"
        );
    }

    #[test]
    fn cgroup_swap_is_read_only_when_it_can_be_shown() {
        assert!(reads_cgroup_swap(HOST_SWAP, true));
        assert!(!reads_cgroup_swap(HOST_SWAP, false), "-u");
        assert!(!reads_cgroup_swap(HOST, true), "host without swap");
        assert!(!reads_cgroup_swap("", true));
    }
}
