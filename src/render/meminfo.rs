//! `/proc/meminfo`: the host file with the values the cgroup knows replaced
//! (`docs/semantics.md#proc-meminfo`).
//!
//! Only values change: line order, keys, padding style and unknown keys stay as the host
//! wrote them, so tools that parse by key or by column keep working on any kernel version.

use std::fmt::Write;

use super::host_meminfo::{ValueLine, host_kb, kb, limit_kb, parse_value_line};
use super::swap;
use super::text::{split_ending, split_key};
use crate::model::{MemStat, MemoryLimits};

/// The kernel prints meminfo values in a field at least this many digits wide
/// (`seq_put_decimal_ull_width(.., 8)`); a wider value pushes its line's end column out.
const KERNEL_VALUE_WIDTH: usize = 8;

/// Renders `/proc/meminfo`.
/// With no usable memory limit (none set, or one under 1 kB, which would show MemTotal 0 and
/// make `ps` die of SIGFPE) the memory lines stay the host's; the swap lines still follow
/// [`swap::shown`]. Empty host text gives an empty string so the caller can fall back to
/// serving the host file.
pub fn render(host_meminfo: &str, mem: &MemoryLimits, swap_view: bool) -> String {
    if host_meminfo.is_empty() {
        return String::new();
    }
    let mut values = Values::default();
    if let Some(l) = limit_kb(host_meminfo, mem) {
        memory_values(&mut values, host_meminfo, mem, l);
    }
    if let Some(swap) = swap::shown(host_meminfo, mem, swap_view) {
        values.set(Key::SwapTotal, swap.total);
        values.set(Key::SwapFree, swap.total.saturating_sub(swap.used));
        values.set(Key::SwapCached, 0);
    }
    rewrite(host_meminfo, &values)
}

/// Every meminfo key whose value a cgroup can replace. Every read renders meminfo, so the
/// values sit in a fixed array indexed by key, not in a map built per read.
#[derive(Debug, Clone, Copy)]
enum Key {
    MemTotal,
    MemFree,
    MemAvailable,
    Buffers,
    Cached,
    SwapCached,
    Active,
    Inactive,
    ActiveAnon,
    InactiveAnon,
    ActiveFile,
    InactiveFile,
    Unevictable,
    SwapTotal,
    SwapFree,
    Dirty,
    Writeback,
    AnonPages,
    Mapped,
    Shmem,
    KReclaimable,
    Slab,
    SReclaimable,
    SUnreclaim,
    KernelStack,
    PageTables,
    AnonHugePages,
}

impl Key {
    /// How many keys there are.
    const COUNT: usize = Key::AnonHugePages as usize + 1;

    /// The key of a meminfo line, if a cgroup can replace its value.
    fn of(name: &str) -> Option<Key> {
        Some(match name {
            "MemTotal" => Key::MemTotal,
            "MemFree" => Key::MemFree,
            "MemAvailable" => Key::MemAvailable,
            "Buffers" => Key::Buffers,
            "Cached" => Key::Cached,
            "SwapCached" => Key::SwapCached,
            "Active" => Key::Active,
            "Inactive" => Key::Inactive,
            "Active(anon)" => Key::ActiveAnon,
            "Inactive(anon)" => Key::InactiveAnon,
            "Active(file)" => Key::ActiveFile,
            "Inactive(file)" => Key::InactiveFile,
            "Unevictable" => Key::Unevictable,
            "SwapTotal" => Key::SwapTotal,
            "SwapFree" => Key::SwapFree,
            "Dirty" => Key::Dirty,
            "Writeback" => Key::Writeback,
            "AnonPages" => Key::AnonPages,
            "Mapped" => Key::Mapped,
            "Shmem" => Key::Shmem,
            "KReclaimable" => Key::KReclaimable,
            "Slab" => Key::Slab,
            "SReclaimable" => Key::SReclaimable,
            "SUnreclaim" => Key::SUnreclaim,
            "KernelStack" => Key::KernelStack,
            "PageTables" => Key::PageTables,
            "AnonHugePages" => Key::AnonHugePages,
            _ => return None,
        })
    }
}

/// The values (kB) replacing the host's; a key left unset keeps the host's line.
#[derive(Debug, Default)]
struct Values([Option<u64>; Key::COUNT]);

impl Values {
    fn set(&mut self, key: Key, kb: u64) {
        self.0[key as usize] = Some(kb);
    }

    fn get(&self, key: Key) -> Option<u64> {
        self.0[key as usize]
    }
}

/// Sets the memory values (kB) replacing the host's under a limit of `l` kB. A key is left
/// unset where the cgroup does not know it, so the host line stands.
fn memory_values(v: &mut Values, host: &str, mem: &MemoryLimits, l: u64) {
    let st = &mem.stat;
    let free = match mem.usage {
        Some(u) => l.saturating_sub(kb(u)),
        None => host_kb(host, "MemFree").map_or(0, |f| f.min(l)),
    };
    let reclaimable = [st.active_file, st.inactive_file, st.slab_reclaimable]
        .iter()
        .map(|v| v.unwrap_or(0))
        .fold(0u64, u64::saturating_add);

    v.set(Key::MemTotal, l);
    v.set(Key::MemFree, free);
    v.set(
        Key::MemAvailable,
        free.saturating_add(kb(reclaimable)).min(l),
    );
    v.set(Key::Buffers, 0);
    for (key, bytes) in direct_stats(st) {
        if let Some(b) = bytes {
            v.set(key, kb(b));
        }
    }
    let cached = st.file.map(kb).or_else(|| host_kb(host, "Cached"));
    slab_and_cache(v, cached, st, l - free);
    for (key, a, b) in [
        (Key::Active, st.active_anon, st.active_file),
        (Key::Inactive, st.inactive_anon, st.inactive_file),
    ] {
        if let (Some(a), Some(b)) = (a, b) {
            v.set(key, kb(a.saturating_add(b)));
        }
    }
}

/// Sets Cached and the slab lines so that what `free` subtracts from the used memory
/// (`used` kB = MemTotal − MemFree) never exceeds it.
/// busybox `free` computes used = total − free − (buffers + Cached + SReclaimable), in
/// unsigned arithmetic, so a sum over `used` wraps to an absurd number. The host's slab
/// (what a cgroup without slab counters, i.e. every v1 one, used to show) is exactly such a
/// sum; so is a page cache just over a usage counter the kernel batches per CPU. Unknown
/// slab is therefore 0, and Cached (`cached` kB: the cgroup's, else the host's), then
/// SReclaimable, are capped at what is left of `used`.
fn slab_and_cache(v: &mut Values, cached: Option<u64>, st: &MemStat, used: u64) {
    let cached = cached.map(|c| c.min(used));
    let reclaimable = st
        .slab_reclaimable
        .map_or(0, kb)
        .min(used - cached.unwrap_or(0));
    let unreclaimable = st.slab_unreclaimable.map_or(0, kb);
    if let Some(c) = cached {
        v.set(Key::Cached, c);
    }
    v.set(Key::SReclaimable, reclaimable);
    v.set(Key::SUnreclaim, unreclaimable);
    v.set(Key::Slab, reclaimable.saturating_add(unreclaimable));
    // KReclaimable is SReclaimable plus other reclaimable kernel memory the cgroup does not
    // account; the host's number would dwarf a small container's slab.
    v.set(Key::KReclaimable, reclaimable);
}

/// meminfo keys whose value is one `memory.stat` field as it is.
fn direct_stats(st: &MemStat) -> [(Key, Option<u64>); 13] {
    [
        (Key::ActiveAnon, st.active_anon),
        (Key::InactiveAnon, st.inactive_anon),
        (Key::ActiveFile, st.active_file),
        (Key::InactiveFile, st.inactive_file),
        (Key::Unevictable, st.unevictable),
        (Key::Shmem, st.shmem),
        (Key::Mapped, st.mapped),
        (Key::Dirty, st.dirty),
        (Key::Writeback, st.writeback),
        (Key::AnonHugePages, st.anon_thp),
        (Key::AnonPages, st.anon),
        (Key::KernelStack, st.kernel_stack),
        (Key::PageTables, st.pagetables),
    ]
}

/// The host text with the value of every key set in `values` replaced; other lines
/// unchanged.
fn rewrite(host: &str, values: &Values) -> String {
    let mut out = String::with_capacity(host.len() + 64);
    for line in host.split_inclusive('\n') {
        let (body, ending) = split_ending(line);
        let replaced = split_key(body)
            .and_then(|(key, _)| values.get(Key::of(key)?))
            .and_then(|v| Some((parse_value_line(body)?, v)));
        match replaced {
            Some((parsed, v)) => {
                relayout(&mut out, body, &parsed, v);
                out.push_str(ending);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// Appends `body` with its value replaced by `new`, placed where the kernel would put it.
/// The host value's field starts `max(digits, 8)` columns before its end (the kernel's
/// minimum width), and the new value ends `max(new digits, 8)` columns after that start:
/// the same end column as the host for normal sizes, and the kernel's own layout when either
/// value is wider. At least one space always separates the colon from the value.
fn relayout(out: &mut String, body: &str, line: &ValueLine<'_>, new: u64) {
    let new_digits = digits(new);
    let field_start = line
        .end
        .saturating_sub(line.digits.len().max(KERNEL_VALUE_WIDTH));
    let new_end = field_start + new_digits.max(KERNEL_VALUE_WIDTH);
    let spaces = new_end.saturating_sub(line.head_len + new_digits).max(1);
    out.push_str(&body[..line.head_len]);
    out.extend(std::iter::repeat_n(' ', spaces));
    // Writing to a String cannot fail.
    let _ = write!(out, "{new}");
    out.push_str(&body[line.end..]);
}

/// How many decimal digits `n` has.
fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |l| l as usize + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_counts_decimal_digits() {
        for n in [0, 9, 10, 99, 100, 12_345_678, 123_456_789, u64::MAX] {
            assert_eq!(digits(n), n.to_string().len(), "{n}");
        }
    }

    #[test]
    fn every_key_names_itself() {
        let names = [
            "MemTotal",
            "MemFree",
            "MemAvailable",
            "Buffers",
            "Cached",
            "SwapCached",
            "Active",
            "Inactive",
            "Active(anon)",
            "Inactive(anon)",
            "Active(file)",
            "Inactive(file)",
            "Unevictable",
            "SwapTotal",
            "SwapFree",
            "Dirty",
            "Writeback",
            "AnonPages",
            "Mapped",
            "Shmem",
            "KReclaimable",
            "Slab",
            "SReclaimable",
            "SUnreclaim",
            "KernelStack",
            "PageTables",
            "AnonHugePages",
        ];
        assert_eq!(names.len(), Key::COUNT);
        let mut slots: Vec<usize> = names
            .iter()
            .map(|n| Key::of(n).expect(n) as usize)
            .collect();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), Key::COUNT, "one slot each");
        assert!(Key::of("HugePages_Total").is_none());
    }

    use crate::render::test_input::{GIB, HOST, HOST_SWAP, MIB, limited};

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

    fn keys(text: &str) -> Vec<&str> {
        text.lines()
            .map(|l| l.split(':').next().unwrap_or(""))
            .collect()
    }

    #[test]
    fn v2_limit_replaces_every_known_value_in_kernel_layout() {
        let out = render(HOST, &limited(GIB, Some(300 * MIB), v2_stat()), true);
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
        let out = render(HOST, &limited(GIB, Some(300 * MIB), v2_stat()), true);
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
    fn v1_stat_shows_no_slab_and_host_stack_and_page_tables() {
        let out = render(HOST, &limited(GIB, Some(300 * MIB), v1_stat()), true);
        for key in ["KernelStack", "PageTables"] {
            assert_eq!(line(&out, key), line(HOST, key), "{key}");
        }
        // The host's slab would belong to everyone else, and busybox `free` subtracts
        // SReclaimable from the used memory.
        for key in ["SReclaimable", "SUnreclaim", "Slab", "KReclaimable"] {
            assert_eq!(value(&out, key), 0, "{key}");
        }
        // Without slab_reclaimable only the page cache counts as available.
        assert_eq!(value(&out, "MemAvailable"), 741376 + 200 * 1024);
        assert_eq!(value(&out, "Cached"), 200 * 1024);
    }

    /// What busybox `free` subtracts from MemTotal − MemFree never exceeds it.
    fn free_never_wraps(out: &str) {
        let used = value(out, "MemTotal") - value(out, "MemFree");
        let cache = value(out, "Cached") + value(out, "SReclaimable") + value(out, "Buffers");
        assert!(
            cache <= used,
            "Cached + SReclaimable {cache} > used {used}:\n{out}"
        );
        assert_eq!(
            value(out, "Slab"),
            value(out, "SReclaimable") + value(out, "SUnreclaim")
        );
    }

    #[test]
    fn cached_and_reclaimable_slab_fit_in_the_used_memory() {
        // A cache the batched usage counter has not caught up with yet: Cached is capped.
        let cache_over_usage = MemStat {
            file: Some(12 * MIB),
            ..v1_stat()
        };
        let out = render(HOST, &limited(GIB, Some(10 * MIB), cache_over_usage), true);
        free_never_wraps(&out);
        assert_eq!(value(&out, "Cached"), 10 * 1024);
        assert_eq!(value(&out, "SReclaimable"), 0);
        // v2: the cache is counted first, the slab gets what is left.
        let out = render(HOST, &limited(GIB, Some(203 * MIB), v2_stat()), true);
        free_never_wraps(&out);
        assert_eq!(value(&out, "Cached"), 200 * 1024);
        assert_eq!(value(&out, "SReclaimable"), 3 * 1024);
        assert_eq!(value(&out, "KReclaimable"), 3 * 1024);
        assert_eq!(value(&out, "SUnreclaim"), 3 * 1024);
        // Unknown usage: MemFree is the host's (capped), the rest follows.
        let out = render(HOST, &limited(GIB, None, v2_stat()), true);
        free_never_wraps(&out);
        // Unknown cache: the host's Cached, capped too.
        let no_file = MemStat {
            file: None,
            ..v1_stat()
        };
        let out = render(HOST, &limited(GIB, Some(MIB), no_file), true);
        free_never_wraps(&out);
        assert_eq!(value(&out, "Cached"), 1024);
        for usage in [0, MIB, 100 * MIB, 300 * MIB, GIB, 2 * GIB] {
            for stat in [v1_stat(), v2_stat(), MemStat::default()] {
                free_never_wraps(&render(HOST, &limited(GIB, Some(usage), stat), true));
            }
        }
    }

    #[test]
    fn missing_stat_keys_keep_host_values() {
        let stat = MemStat {
            active_file: None,
            shmem: None,
            ..v2_stat()
        };
        let out = render(HOST, &limited(GIB, Some(300 * MIB), stat), true);
        assert_eq!(line(&out, "Active"), line(HOST, "Active"));
        assert_eq!(line(&out, "Active(file)"), line(HOST, "Active(file)"));
        assert_eq!(line(&out, "Shmem"), line(HOST, "Shmem"));
        assert_eq!(value(&out, "Inactive"), 120 * 1024);
        // A missing part counts 0 towards MemAvailable.
        assert_eq!(value(&out, "MemAvailable"), 741376 + 85 * 1024);
    }

    #[test]
    fn limit_above_host_is_capped_at_host_memtotal() {
        let out = render(HOST, &limited(1024 * GIB, Some(GIB), v2_stat()), true);
        let host_total = value(HOST, "MemTotal");
        assert_eq!(line(&out, "MemTotal"), line(HOST, "MemTotal"));
        assert_eq!(value(&out, "MemFree"), host_total - 1024 * 1024);
    }

    #[test]
    fn usage_above_limit_gives_memfree_zero() {
        let out = render(HOST, &limited(GIB, Some(2 * GIB), v2_stat()), true);
        assert_eq!(value(&out, "MemFree"), 0);
        assert_eq!(value(&out, "MemAvailable"), 205 * 1024);
        let huge_cache = MemStat {
            active_file: Some(4 * GIB),
            ..v2_stat()
        };
        let out = render(HOST, &limited(GIB, Some(2 * GIB), huge_cache), true);
        assert_eq!(
            value(&out, "MemAvailable"),
            1024 * 1024,
            "capped at MemTotal"
        );
    }

    #[test]
    fn unknown_usage_caps_host_memfree_at_the_limit() {
        let out = render(HOST, &limited(GIB, None, v2_stat()), true);
        assert_eq!(value(&out, "MemFree"), 1024 * 1024);
        let out = render(HOST, &limited(1024 * GIB, None, v2_stat()), true);
        assert_eq!(line(&out, "MemFree"), line(HOST, "MemFree"));
    }

    #[test]
    fn values_larger_than_host_are_shown_as_read_and_laid_out_like_the_kernel() {
        let stat = MemStat {
            active_anon: Some(20 * 1024 * GIB),
            ..v2_stat()
        };
        let out = render(HOST, &limited(GIB, Some(0), stat), true);
        // 11 digits overflow the kernel's 8-wide field; the 16-wide key field stays.
        assert_eq!(line(&out, "Active(anon)"), "Active(anon):   21474836480 kB");
        assert_eq!(line(&out, "Active"), "Active:         21474959360 kB");
    }

    #[test]
    fn narrow_host_layout_keeps_its_end_column_and_one_space_minimum() {
        let host = "MemTotal: 2000 kB\nMemFree: 1500 kB\n";
        let out = render(
            host,
            &limited(1000 * 1024, Some(1023 * 1024 / 2), MemStat::default()),
            true,
        );
        assert_eq!(out, "MemTotal: 1000 kB\nMemFree:  489 kB\n");
        let host = "MemTotal: 200000000000 kB\nMemFree: 1 kB\n";
        let out = render(
            host,
            &limited(123_456_789_012 * 1024, Some(0), MemStat::default()),
            true,
        );
        assert_eq!(out, "MemTotal: 123456789012 kB\nMemFree: 123456789012 kB\n");
    }

    #[test]
    fn no_limit_serves_the_host_file() {
        let out = render(HOST_SWAP, &MemoryLimits::default(), true);
        assert_eq!(out, HOST_SWAP);
        let usage_only = MemoryLimits {
            usage: Some(GIB),
            stat: v2_stat(),
            ..Default::default()
        };
        assert_eq!(render(HOST, &usage_only, true), HOST);
    }

    #[test]
    fn no_swap_view_zeroes_swap_even_without_a_limit() {
        let out = render(HOST_SWAP, &MemoryLimits::default(), false);
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
        let out = render(HOST_SWAP, &mem, true);
        assert_eq!(line(&out, "SwapTotal"), "SwapTotal:       1048576 kB");
        assert_eq!(line(&out, "SwapFree"), "SwapFree:         946176 kB");
        assert_eq!(line(&out, "SwapCached"), "SwapCached:            0 kB");
    }

    #[test]
    fn zero_or_sub_kb_limit_serves_host_memory_lines() {
        for limit in [0, 512] {
            let out = render(HOST, &limited(limit, Some(0), v2_stat()), true);
            assert_eq!(out, HOST, "limit {limit}");
        }
    }

    #[test]
    fn empty_host_gives_empty_text() {
        assert_eq!(render("", &limited(GIB, Some(0), v2_stat()), true), "");
        assert_eq!(render("", &MemoryLimits::default(), false), "");
    }

    #[test]
    fn crlf_and_garbage_lines_survive() {
        let host = "MemTotal:       24684084 kB\r\ngarbage line\r\nMemFree:        24467232 kB\r\n\
                    Weird: notanumber kB\r\nMemAvailable:   24415344 kB";
        let out = render(host, &limited(GIB, Some(GIB / 2), MemStat::default()), true);
        assert_eq!(
            out,
            "MemTotal:        1048576 kB\r\ngarbage line\r\nMemFree:          524288 kB\r\n\
             Weird: notanumber kB\r\nMemAvailable:     524288 kB"
        );
    }

    #[test]
    fn missing_memtotal_still_renders_the_limit() {
        let host = "MemFree:        1000 kB\nBuffers: 5 kB\n";
        let out = render(
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
            let _ = render(host, &limited(GIB, Some(2 * GIB), v2_stat()), false);
            let _ = render(host, &MemoryLimits::default(), true);
            let _ = swap::sizes(host, &limited(GIB, None, v2_stat()), true);
        }
    }
}
