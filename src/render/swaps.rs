//! `/proc/swaps`: one virtual device standing for the cgroup's swap allowance
//! (`docs/semantics.md#proc-swaps`).
//!
//! The host's devices are hidden: their paths and sizes describe the host, and a reader
//! adding them up must get the same SwapTotal as `/proc/meminfo` shows it.

use super::swap::SwapKb;

/// The header `mm/swapfile.c` prints, for a host file that has none.
const KERNEL_HEADER: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";

/// Width the kernel pads the path column to (`len < 40 ? 40 - len : 1` spaces after it).
const PATH_COLUMN: usize = 40;

/// Below this many kB a size is short enough that the kernel adds a second tab to line up
/// with the header's `Size\t\t` / `Used\t\t`.
const SHORT_NUMBER: u64 = 10_000_000;

/// The host text unchanged when `shown` is `None` (the host's swap stands, see
/// `render::swap::shown`); otherwise the host file's header line (the kernel's when the host
/// text has none), then, when the reader has swap, one `none` device of type `virtual` with
/// the sizes of [`SwapKb`], laid out as `swap_show` lays out a device line so columns match
/// the header.
pub fn render(host_swaps: &str, shown: Option<SwapKb>) -> String {
    match shown {
        Some(swap) => virtual_device(host_swaps, swap),
        None => host_swaps.to_string(),
    }
}

/// The header and the virtual device line for `swap`.
fn virtual_device(host_swaps: &str, swap: SwapKb) -> String {
    let mut out = host_header(host_swaps);
    if swap.total > 0 {
        out.push_str(&device_line("none", "virtual\t", swap.total, swap.used, 0));
    }
    out
}

/// The host's first line if it is a header, with a line ending; else the kernel's header.
fn host_header(host_swaps: &str) -> String {
    match host_swaps.split_inclusive('\n').next() {
        Some(line) if line.starts_with("Filename") => {
            let mut header = line.to_string();
            if !header.ends_with('\n') {
                header.push('\n');
            }
            header
        }
        _ => KERNEL_HEADER.to_string(),
    }
}

/// One device line as the kernel's `"%*s%s\t%lu\t%s%lu\t%s%d\n"` prints it.
/// `kind` carries its own trailing tab when shorter than `partition`, as `"file\t"` does.
fn device_line(path: &str, kind: &str, size: u64, used: u64, priority: i32) -> String {
    let pad = PATH_COLUMN.saturating_sub(path.len()).max(1);
    let tab = |n: u64| if n < SHORT_NUMBER { "\t" } else { "" };
    format!(
        "{path}{}{kind}\t{size}\t{}{used}\t{}{priority}\n",
        " ".repeat(pad),
        tab(size),
        tab(used)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_NONE: &str = include_str!("../../tests/fixtures/render/swaps-none");
    const HOST_TWO: &str = include_str!("../../tests/fixtures/render/swaps-two");

    #[test]
    fn device_line_matches_the_kernels_own_lines() {
        // The kernel's lines for a file and a partition, as found in the fixture.
        let mut host = HOST_TWO.lines().skip(1);
        assert_eq!(
            Some(device_line("/swap.img", "file\t", 4194300, 262144, -2).trim_end()),
            host.next()
        );
        assert_eq!(
            Some(device_line("/dev/sda2", "partition", 16777212, 0, -3).trim_end()),
            host.next()
        );
    }

    #[test]
    fn shows_one_virtual_device_under_the_host_header() {
        let out = virtual_device(
            HOST_TWO,
            SwapKb {
                total: 1048576,
                used: 2048,
            },
        );
        assert_eq!(
            out,
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
             none                                    virtual\t\t1048576\t\t2048\t\t0\n"
        );
        let none_line = out.lines().nth(1).unwrap_or_default();
        assert_eq!(none_line.find("virtual"), Some(PATH_COLUMN));
    }

    #[test]
    fn large_sizes_drop_the_second_tab_like_the_kernel() {
        let out = virtual_device(
            HOST_NONE,
            SwapKb {
                total: 16777212,
                used: 10_000_000,
            },
        );
        assert!(
            out.ends_with("virtual\t\t16777212\t10000000\t0\n"),
            "{out:?}"
        );
    }

    #[test]
    fn no_swap_shows_the_header_only() {
        assert_eq!(virtual_device(HOST_NONE, SwapKb::default()), HOST_NONE);
        assert_eq!(
            virtual_device(HOST_TWO, SwapKb { total: 0, used: 0 }),
            KERNEL_HEADER
        );
    }

    #[test]
    fn the_host_file_stands_when_nothing_is_shown_instead() {
        assert_eq!(render(HOST_TWO, None), HOST_TWO);
        assert_eq!(render(HOST_TWO, Some(SwapKb::default())), KERNEL_HEADER);
        assert_eq!(
            render(HOST_NONE, Some(SwapKb { total: 4, used: 1 })),
            virtual_device(HOST_NONE, SwapKb { total: 4, used: 1 })
        );
    }

    #[test]
    fn missing_or_odd_host_header_uses_the_kernels() {
        assert_eq!(virtual_device("", SwapKb::default()), KERNEL_HEADER);
        assert_eq!(
            virtual_device("/dev/sda2 partition 1 0 -2\n", SwapKb::default()),
            KERNEL_HEADER
        );
        assert_eq!(
            virtual_device("Filename Type", SwapKb::default()),
            "Filename Type\n"
        );
    }
}
