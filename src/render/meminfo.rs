//! `/proc/meminfo`: the host file with the values the cgroup knows replaced.
//!
//! Only values change: line order, keys, padding style and unknown keys stay as the host
//! wrote them, so tools that parse by key or by column keep working on any kernel version.

use std::collections::BTreeMap;

use super::{split_ending, split_key};
use crate::model::{MemStat, MemoryLimits};

/// The kernel prints meminfo values in a field at least this many digits wide
/// (`seq_put_decimal_ull_width(.., 8)`); a wider value pushes its line's end column out.
const KERNEL_VALUE_WIDTH: usize = 8;

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
pub fn swap_kb(host_meminfo: &str, mem: &MemoryLimits, swap_view: bool) -> SwapKb {
    let host_total = host_kb(host_meminfo, "SwapTotal").unwrap_or(0);
    if !swap_view || host_total == 0 {
        return SwapKb::default();
    }
    if host_swap_applies(host_meminfo, mem, swap_view) {
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

/// The limit (kB) that replaces MemTotal: the cgroup's, capped at the host's MemTotal;
/// `None` when none is set or it is under 1 kB.
fn limit_kb(host_meminfo: &str, mem: &MemoryLimits) -> Option<u64> {
    mem.limit
        .map(|b| host_kb(host_meminfo, "MemTotal").map_or(kb(b), |t| kb(b).min(t)))
        .filter(|&l| l > 0)
}

/// Whether the reader sees the host's swap unchanged (meminfo's swap lines and
/// `/proc/swaps`): swap is shown and neither a usable memory limit nor a swap limit
/// applies. The cgroup may still have usage and `memory.stat` (the root cgroup does).
pub fn host_swap_applies(host_meminfo: &str, mem: &MemoryLimits, swap_view: bool) -> bool {
    swap_view && limit_kb(host_meminfo, mem).is_none() && mem.swap_limit.is_none()
}

/// Renders `/proc/meminfo` as `semantics.md` says.
///
/// With no usable memory limit (none set, or one under 1 kB, which would show MemTotal 0 and
/// make `ps` die of SIGFPE) the memory lines stay the host's; the swap lines still follow
/// [`swap_kb`] unless the host's swap view applies unchanged. Empty host text gives an empty
/// string so the caller can fall back to serving the host file.
pub fn render_meminfo(host_meminfo: &str, mem: &MemoryLimits, swap_view: bool) -> String {
    if host_meminfo.is_empty() {
        return String::new();
    }
    let mut values = BTreeMap::new();
    if let Some(l) = limit_kb(host_meminfo, mem) {
        values = memory_values(host_meminfo, mem, l);
    }
    if !host_swap_applies(host_meminfo, mem, swap_view) {
        let swap = swap_kb(host_meminfo, mem, swap_view);
        values.insert("SwapTotal", swap.total);
        values.insert("SwapFree", swap.total.saturating_sub(swap.used));
        values.insert("SwapCached", 0);
    }
    rewrite(host_meminfo, &values)
}

/// The memory values (kB) replacing the host's under a limit of `l` kB. A key is absent
/// where the cgroup does not know it, so the host line stands.
fn memory_values(host: &str, mem: &MemoryLimits, l: u64) -> BTreeMap<&'static str, u64> {
    let st = &mem.stat;
    let host_val = |key: &str| host_kb(host, key);
    let free = match mem.usage {
        Some(u) => l.saturating_sub(kb(u)),
        None => host_val("MemFree").map_or(0, |f| f.min(l)),
    };
    let reclaimable = [st.active_file, st.inactive_file, st.slab_reclaimable]
        .iter()
        .map(|v| v.unwrap_or(0))
        .fold(0u64, u64::saturating_add);

    let mut v = BTreeMap::new();
    v.insert("MemTotal", l);
    v.insert("MemFree", free);
    v.insert("MemAvailable", free.saturating_add(kb(reclaimable)).min(l));
    v.insert("Buffers", 0);
    for (key, bytes) in direct_stats(st) {
        if let Some(b) = bytes {
            v.insert(key, kb(b));
        }
    }
    for (key, a, b) in [
        ("Active", st.active_anon, st.active_file),
        ("Inactive", st.inactive_anon, st.inactive_file),
    ] {
        if let (Some(a), Some(b)) = (a, b) {
            v.insert(key, kb(a.saturating_add(b)));
        }
    }
    // Slab is shown as the sum of the two lines shown under it, whichever source each has.
    let shown = |key: &str| v.get(key).copied().or_else(|| host_val(key));
    if let (Some(r), Some(u)) = (shown("SReclaimable"), shown("SUnreclaim")) {
        v.insert("Slab", r.saturating_add(u));
    }
    // KReclaimable is SReclaimable plus other reclaimable kernel memory the cgroup does not
    // account; the host's number would dwarf a small container's slab.
    if let Some(r) = st.slab_reclaimable {
        v.insert("KReclaimable", kb(r));
    }
    v
}

/// meminfo keys whose value is one `memory.stat` field as it is.
fn direct_stats(st: &MemStat) -> [(&'static str, Option<u64>); 16] {
    [
        ("Cached", st.file),
        ("Active(anon)", st.active_anon),
        ("Inactive(anon)", st.inactive_anon),
        ("Active(file)", st.active_file),
        ("Inactive(file)", st.inactive_file),
        ("Unevictable", st.unevictable),
        ("Shmem", st.shmem),
        ("Mapped", st.mapped),
        ("Dirty", st.dirty),
        ("Writeback", st.writeback),
        ("AnonHugePages", st.anon_thp),
        ("AnonPages", st.anon),
        ("KernelStack", st.kernel_stack),
        ("PageTables", st.pagetables),
        ("SReclaimable", st.slab_reclaimable),
        ("SUnreclaim", st.slab_unreclaimable),
    ]
}

/// Bytes to kB, as the kernel truncates.
fn kb(bytes: u64) -> u64 {
    bytes / 1024
}

/// A `Key:   value rest` line cut where a rewrite needs it.
#[derive(Debug, PartialEq, Eq)]
struct ValueLine<'a> {
    /// `Key` without the colon.
    key: &'a str,
    /// Byte length of the line up to and including the colon.
    head_len: usize,
    /// Byte length of the line up to the end of the value's digits.
    end: usize,
    /// The value's digits.
    digits: &'a str,
    /// The value.
    value: u64,
}

/// Parses one meminfo line (no line ending); `None` for a line with no numeric value.
fn parse_value_line(body: &str) -> Option<ValueLine<'_>> {
    let (key, after) = split_key(body)?;
    let head_len = body.len() - after.len();
    let rest = after.trim_start_matches([' ', '\t']);
    let start = body.len() - rest.len();
    let n = rest.bytes().take_while(u8::is_ascii_digit).count();
    let digits = &rest[..n];
    let value = digits.parse().ok()?;
    Some(ValueLine {
        key,
        head_len,
        end: start + n,
        digits,
        value,
    })
}

/// The value of `key` in meminfo-style text (in the file's own unit, kB for meminfo).
pub(crate) fn host_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .filter_map(parse_value_line)
        .find(|l| l.key == key)
        .map(|l| l.value)
}

/// The host text with the value of every key in `values` replaced; other lines unchanged.
fn rewrite(host: &str, values: &BTreeMap<&str, u64>) -> String {
    let mut out = String::with_capacity(host.len() + 64);
    for line in host.split_inclusive('\n') {
        let (body, ending) = split_ending(line);
        match parse_value_line(body).and_then(|l| values.get(l.key).map(|&v| (l, v))) {
            Some((parsed, v)) => {
                out.push_str(&relayout(body, &parsed, v));
                out.push_str(ending);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// `body` with its value replaced by `new`, placed where the kernel would put it.
///
/// The host value's field starts `max(digits, 8)` columns before its end (the kernel's
/// minimum width), and the new value ends `max(new digits, 8)` columns after that start:
/// the same end column as the host for normal sizes, and the kernel's own layout when either
/// value is wider. At least one space always separates the colon from the value.
fn relayout(body: &str, line: &ValueLine<'_>, new: u64) -> String {
    let new_digits = new.to_string();
    let field_start = line
        .end
        .saturating_sub(line.digits.len().max(KERNEL_VALUE_WIDTH));
    let new_end = field_start + new_digits.len().max(KERNEL_VALUE_WIDTH);
    let spaces = new_end
        .saturating_sub(line.head_len + new_digits.len())
        .max(1);
    format!(
        "{}{}{}{}",
        &body[..line.head_len],
        " ".repeat(spaces),
        new_digits,
        &body[line.end..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = include_str!("../../tests/fixtures/render/meminfo");
    const HOST_SWAP: &str = include_str!("../../tests/fixtures/render/meminfo-swap");
    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * MIB;

    /// The line of `key` in rendered text.
    fn line<'a>(text: &'a str, key: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(&format!("{key}:")))
            .unwrap_or_else(|| panic!("no {key} line in {text}"))
    }

    fn value(text: &str, key: &str) -> u64 {
        host_kb(text, key).unwrap_or_else(|| panic!("no {key} value"))
    }

    fn v2_stat() -> MemStat {
        MemStat {
            anon: Some(100 * MIB),
            file: Some(200 * MIB),
            shmem: Some(10 * MIB),
            active_anon: Some(60 * MIB),
            inactive_anon: Some(40 * MIB),
            active_file: Some(120 * MIB),
            inactive_file: Some(80 * MIB),
            unevictable: Some(MIB),
            mapped: Some(30 * MIB),
            dirty: Some(4096),
            writeback: Some(0),
            anon_thp: Some(2 * MIB),
            slab_reclaimable: Some(5 * MIB),
            slab_unreclaimable: Some(3 * MIB),
            kernel_stack: Some(512 * 1024),
            pagetables: Some(768 * 1024),
        }
    }

    /// v1 `memory.stat` has no slab, kernel stack or page table counters.
    fn v1_stat() -> MemStat {
        MemStat {
            slab_reclaimable: None,
            slab_unreclaimable: None,
            kernel_stack: None,
            pagetables: None,
            ..v2_stat()
        }
    }

    fn limited(limit: u64, usage: Option<u64>, stat: MemStat) -> MemoryLimits {
        MemoryLimits {
            limit: Some(limit),
            usage,
            swap_limit: None,
            swap_usage: None,
            stat,
        }
    }

    fn keys(text: &str) -> Vec<&str> {
        text.lines()
            .map(|l| l.split(':').next().unwrap_or(""))
            .collect()
    }

    #[test]
    fn v2_limit_replaces_every_known_value_in_kernel_layout() {
        let out = render_meminfo(HOST, &limited(GIB, Some(300 * MIB), v2_stat()), true);
        assert_eq!(line(&out, "MemTotal"), "MemTotal:        1048576 kB");
        assert_eq!(line(&out, "MemFree"), "MemFree:          741376 kB");
        // MemFree + (120 + 80 + 5) MiB of reclaimable memory.
        assert_eq!(line(&out, "MemAvailable"), "MemAvailable:     951296 kB");
        assert_eq!(line(&out, "Buffers"), "Buffers:               0 kB");
        assert_eq!(line(&out, "Cached"), "Cached:           204800 kB");
        assert_eq!(line(&out, "SwapCached"), "SwapCached:            0 kB");
        assert_eq!(line(&out, "Active"), "Active:           184320 kB");
        assert_eq!(line(&out, "Inactive"), "Inactive:         122880 kB");
        assert_eq!(line(&out, "Active(anon)"), "Active(anon):      61440 kB");
        assert_eq!(line(&out, "Inactive(anon)"), "Inactive(anon):    40960 kB");
        assert_eq!(line(&out, "Active(file)"), "Active(file):     122880 kB");
        assert_eq!(line(&out, "Inactive(file)"), "Inactive(file):    81920 kB");
        assert_eq!(line(&out, "Unevictable"), "Unevictable:        1024 kB");
        assert_eq!(line(&out, "Dirty"), "Dirty:                 4 kB");
        assert_eq!(line(&out, "Writeback"), "Writeback:             0 kB");
        assert_eq!(line(&out, "AnonPages"), "AnonPages:        102400 kB");
        assert_eq!(line(&out, "Mapped"), "Mapped:            30720 kB");
        assert_eq!(line(&out, "Shmem"), "Shmem:             10240 kB");
        assert_eq!(line(&out, "KReclaimable"), "KReclaimable:       5120 kB");
        assert_eq!(line(&out, "Slab"), "Slab:               8192 kB");
        assert_eq!(line(&out, "SReclaimable"), "SReclaimable:       5120 kB");
        assert_eq!(line(&out, "SUnreclaim"), "SUnreclaim:         3072 kB");
        assert_eq!(line(&out, "KernelStack"), "KernelStack:         512 kB");
        assert_eq!(line(&out, "PageTables"), "PageTables:          768 kB");
        assert_eq!(line(&out, "AnonHugePages"), "AnonHugePages:      2048 kB");
        // The host has no swap, so none is shown whatever the view.
        assert_eq!(line(&out, "SwapTotal"), "SwapTotal:             0 kB");
        assert_eq!(line(&out, "SwapFree"), "SwapFree:              0 kB");
    }

    #[test]
    fn unknown_keys_order_and_line_count_pass_through() {
        let out = render_meminfo(HOST, &limited(GIB, Some(300 * MIB), v2_stat()), true);
        assert_eq!(keys(&out), keys(HOST));
        for key in [
            "Mlocked",
            "Zswap",
            "CommitLimit",
            "VmallocTotal",
            "HugePages_Total",
            "Hugepagesize",
            "DirectMap1G",
        ] {
            assert_eq!(line(&out, key), line(HOST, key), "{key}");
        }
        assert!(out.ends_with(" kB\n"));
    }

    #[test]
    fn v1_stat_falls_back_to_host_slab_stack_and_page_tables() {
        let out = render_meminfo(HOST, &limited(GIB, Some(300 * MIB), v1_stat()), true);
        for key in [
            "SReclaimable",
            "SUnreclaim",
            "KernelStack",
            "PageTables",
            "KReclaimable",
        ] {
            assert_eq!(line(&out, key), line(HOST, key), "{key}");
        }
        assert_eq!(
            value(&out, "Slab"),
            value(HOST, "SReclaimable") + value(HOST, "SUnreclaim")
        );
        // Without slab_reclaimable only the page cache counts as available.
        assert_eq!(value(&out, "MemAvailable"), 741376 + 200 * 1024);
        assert_eq!(value(&out, "Cached"), 200 * 1024);
    }

    #[test]
    fn missing_stat_keys_keep_host_values() {
        let stat = MemStat {
            active_file: None,
            shmem: None,
            ..v2_stat()
        };
        let out = render_meminfo(HOST, &limited(GIB, Some(300 * MIB), stat), true);
        assert_eq!(line(&out, "Active"), line(HOST, "Active"));
        assert_eq!(line(&out, "Active(file)"), line(HOST, "Active(file)"));
        assert_eq!(line(&out, "Shmem"), line(HOST, "Shmem"));
        assert_eq!(value(&out, "Inactive"), 120 * 1024);
        // A missing part counts 0 towards MemAvailable.
        assert_eq!(value(&out, "MemAvailable"), 741376 + 85 * 1024);
    }

    #[test]
    fn limit_above_host_is_capped_at_host_memtotal() {
        let out = render_meminfo(HOST, &limited(1024 * GIB, Some(GIB), v2_stat()), true);
        let host_total = value(HOST, "MemTotal");
        assert_eq!(line(&out, "MemTotal"), line(HOST, "MemTotal"));
        assert_eq!(value(&out, "MemFree"), host_total - 1024 * 1024);
    }

    #[test]
    fn usage_above_limit_gives_memfree_zero() {
        let out = render_meminfo(HOST, &limited(GIB, Some(2 * GIB), v2_stat()), true);
        assert_eq!(value(&out, "MemFree"), 0);
        assert_eq!(value(&out, "MemAvailable"), 205 * 1024);
        let huge_cache = MemStat {
            active_file: Some(4 * GIB),
            ..v2_stat()
        };
        let out = render_meminfo(HOST, &limited(GIB, Some(2 * GIB), huge_cache), true);
        assert_eq!(
            value(&out, "MemAvailable"),
            1024 * 1024,
            "capped at MemTotal"
        );
    }

    #[test]
    fn unknown_usage_caps_host_memfree_at_the_limit() {
        let out = render_meminfo(HOST, &limited(GIB, None, v2_stat()), true);
        assert_eq!(value(&out, "MemFree"), 1024 * 1024);
        let out = render_meminfo(HOST, &limited(1024 * GIB, None, v2_stat()), true);
        assert_eq!(line(&out, "MemFree"), line(HOST, "MemFree"));
    }

    #[test]
    fn values_larger_than_host_are_shown_as_read_and_laid_out_like_the_kernel() {
        let stat = MemStat {
            active_anon: Some(20 * 1024 * GIB),
            ..v2_stat()
        };
        let out = render_meminfo(HOST, &limited(GIB, Some(0), stat), true);
        // 11 digits overflow the kernel's 8-wide field; the 16-wide key field stays.
        assert_eq!(line(&out, "Active(anon)"), "Active(anon):   21474836480 kB");
        assert_eq!(line(&out, "Active"), "Active:         21474959360 kB");
    }

    #[test]
    fn narrow_host_layout_keeps_its_end_column_and_one_space_minimum() {
        let host = "MemTotal: 2000 kB\nMemFree: 1500 kB\n";
        let out = render_meminfo(
            host,
            &limited(1000 * 1024, Some(1023 * 1024 / 2), MemStat::default()),
            true,
        );
        assert_eq!(out, "MemTotal: 1000 kB\nMemFree:  489 kB\n");
        let host = "MemTotal: 200000000000 kB\nMemFree: 1 kB\n";
        let out = render_meminfo(
            host,
            &limited(123_456_789_012 * 1024, Some(0), MemStat::default()),
            true,
        );
        assert_eq!(out, "MemTotal: 123456789012 kB\nMemFree: 123456789012 kB\n");
    }

    #[test]
    fn no_limit_serves_the_host_file() {
        let out = render_meminfo(HOST_SWAP, &MemoryLimits::default(), true);
        assert_eq!(out, HOST_SWAP);
        let usage_only = MemoryLimits {
            usage: Some(GIB),
            stat: v2_stat(),
            ..Default::default()
        };
        assert_eq!(render_meminfo(HOST, &usage_only, true), HOST);
    }

    #[test]
    fn no_swap_view_zeroes_swap_even_without_a_limit() {
        let out = render_meminfo(HOST_SWAP, &MemoryLimits::default(), false);
        assert_eq!(line(&out, "SwapTotal"), "SwapTotal:             0 kB");
        assert_eq!(line(&out, "SwapFree"), "SwapFree:              0 kB");
        assert_eq!(line(&out, "SwapCached"), "SwapCached:            0 kB");
        assert_eq!(line(&out, "MemTotal"), line(HOST_SWAP, "MemTotal"));
        let changed: Vec<_> = out
            .lines()
            .zip(HOST_SWAP.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(changed.len(), 3);
    }

    #[test]
    fn swap_limit_and_usage_are_shown() {
        let mem = MemoryLimits {
            swap_limit: Some(GIB),
            swap_usage: Some(100 * MIB),
            ..limited(GIB, Some(300 * MIB), v2_stat())
        };
        let out = render_meminfo(HOST_SWAP, &mem, true);
        assert_eq!(line(&out, "SwapTotal"), "SwapTotal:       1048576 kB");
        assert_eq!(line(&out, "SwapFree"), "SwapFree:         946176 kB");
        assert_eq!(line(&out, "SwapCached"), "SwapCached:            0 kB");
    }

    #[test]
    fn swap_kb_covers_each_case() {
        let host_total = 4194300;
        let host_used = 4194300 - 3932156;
        let none = MemoryLimits::default();
        assert_eq!(swap_kb(HOST_SWAP, &none, false), SwapKb::default());
        assert_eq!(
            swap_kb(HOST, &none, true),
            SwapKb::default(),
            "host without swap"
        );
        assert_eq!(
            swap_kb(HOST_SWAP, &none, true),
            SwapKb {
                total: host_total,
                used: host_used
            }
        );

        let mem_only = limited(GIB, None, MemStat::default());
        assert_eq!(
            swap_kb(HOST_SWAP, &mem_only, true),
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
            swap_kb(HOST_SWAP, &capped, true),
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
            swap_kb(HOST_SWAP, &over, true),
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
            swap_kb(HOST_SWAP, &swap_only, true),
            SwapKb {
                total: 2048,
                used: 1024
            }
        );
        assert_eq!(swap_kb("", &swap_only, true), SwapKb::default());
    }

    #[test]
    fn zero_or_sub_kb_limit_serves_host_memory_lines() {
        for limit in [0, 512] {
            let out = render_meminfo(HOST, &limited(limit, Some(0), v2_stat()), true);
            assert_eq!(out, HOST, "limit {limit}");
        }
    }

    #[test]
    fn empty_host_gives_empty_text() {
        assert_eq!(
            render_meminfo("", &limited(GIB, Some(0), v2_stat()), true),
            ""
        );
        assert_eq!(render_meminfo("", &MemoryLimits::default(), false), "");
    }

    #[test]
    fn crlf_and_garbage_lines_survive() {
        let host = "MemTotal:       24684084 kB\r\ngarbage line\r\nMemFree:        24467232 kB\r\n\
                    Weird: notanumber kB\r\nMemAvailable:   24415344 kB";
        let out = render_meminfo(host, &limited(GIB, Some(GIB / 2), MemStat::default()), true);
        assert_eq!(
            out,
            "MemTotal:        1048576 kB\r\ngarbage line\r\nMemFree:          524288 kB\r\n\
             Weird: notanumber kB\r\nMemAvailable:     524288 kB"
        );
    }

    #[test]
    fn missing_memtotal_still_renders_the_limit() {
        let host = "MemFree:        1000 kB\nBuffers: 5 kB\n";
        let out = render_meminfo(
            host,
            &limited(GIB, Some(GIB - 1024 * 100), MemStat::default()),
            true,
        );
        assert_eq!(out, "MemFree:         100 kB\nBuffers: 0 kB\n");
    }

    #[test]
    fn never_panics_on_odd_text() {
        let odd = [
            ":",
            "::\n",
            ": 5",
            "MemTotal:",
            "MemTotal: 99999999999999999999999 kB\n",
            "é: 1 kB\n",
            "\n\n\r\n",
            "\u{feff}MemTotal: 1",
        ];
        for host in odd {
            let _ = render_meminfo(host, &limited(GIB, Some(2 * GIB), v2_stat()), false);
            let _ = render_meminfo(host, &MemoryLimits::default(), true);
            let _ = swap_kb(host, &limited(GIB, None, v2_stat()), true);
        }
    }

    #[test]
    fn parses_value_lines() {
        let l = parse_value_line("MemTotal:       24684084 kB").expect("line");
        assert_eq!(
            (l.key, l.head_len, l.end, l.digits, l.value),
            ("MemTotal", 9, 24, "24684084", 24684084)
        );
        assert_eq!(
            parse_value_line("HugePages_Total:       0").map(|l| l.value),
            Some(0)
        );
        assert_eq!(parse_value_line("power management:"), None);
        assert_eq!(parse_value_line("no colon 5"), None);
    }
}
