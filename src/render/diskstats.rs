//! `/proc/diskstats`: the block devices a cgroup did I/O on, with its own counts
//! (`docs/semantics.md#proc-diskstats`).

use std::collections::BTreeMap;

use crate::model::IoStat;

/// Columns the cgroup's numbers go into (0-based, after the device name).
const READS: usize = 0;
const SECTORS_READ: usize = 2;
const WRITES: usize = 4;
const SECTORS_WRITTEN: usize = 6;

/// Fewest numeric columns to print: the 11 every kernel since 2.6 has, so the ones we fill
/// always exist even if a host line is short.
const MIN_COLUMNS: usize = 11;

/// diskstats counts 512-byte sectors whatever the device's block size.
const SECTOR: u64 = 512;

/// One line per device of `io` that the host file lists (matched by MAJ:MIN, which also
/// gives its name), in the host file's order, laid out as the kernel's `diskstats_show`
/// (`%4d %7d %s` then the numbers) with as many numeric columns as the host's line has.
/// Reads completed, sectors read, writes completed and sectors written come from `io`;
/// the cgroup does not track the others, so they are 0. Entries of `io` for the same
/// device are added up. Empty `io` (no I/O stats known) gives the host text unchanged.
pub fn render(host_diskstats: &str, io: &[IoStat]) -> String {
    if io.is_empty() {
        return host_diskstats.to_string();
    }
    let by_dev = merge(io);
    let mut out = String::new();
    for line in host_diskstats.lines() {
        let Some(dev) = HostDev::parse(line) else {
            continue;
        };
        if let Some(stat) = by_dev.get(&(dev.major, dev.minor)) {
            out.push_str(&device_line(&dev, stat));
        }
    }
    out
}

/// `io` keyed by device, with duplicate entries for one device summed.
fn merge(io: &[IoStat]) -> BTreeMap<(u32, u32), IoStat> {
    let mut by_dev: BTreeMap<(u32, u32), IoStat> = BTreeMap::new();
    for s in io {
        by_dev
            .entry((s.major, s.minor))
            .and_modify(|e| {
                e.read_bytes = e.read_bytes.saturating_add(s.read_bytes);
                e.write_bytes = e.write_bytes.saturating_add(s.write_bytes);
                e.reads = e.reads.saturating_add(s.reads);
                e.writes = e.writes.saturating_add(s.writes);
            })
            .or_insert(*s);
    }
    by_dev
}

/// The identity of one host diskstats line.
#[derive(Debug, PartialEq, Eq)]
struct HostDev<'a> {
    major: u32,
    minor: u32,
    name: &'a str,
    /// How many numeric columns follow the name.
    columns: usize,
}

impl<'a> HostDev<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let mut words = line.split_ascii_whitespace();
        let major = words.next()?.parse().ok()?;
        let minor = words.next()?.parse().ok()?;
        let name = words.next()?;
        Some(HostDev {
            major,
            minor,
            name,
            columns: words.count(),
        })
    }
}

fn device_line(dev: &HostDev<'_>, io: &IoStat) -> String {
    let mut cols = vec![0u64; dev.columns.max(MIN_COLUMNS)];
    cols[READS] = io.reads;
    cols[SECTORS_READ] = io.read_bytes / SECTOR;
    cols[WRITES] = io.writes;
    cols[SECTORS_WRITTEN] = io.write_bytes / SECTOR;
    let mut line = format!("{:4} {:7} {}", dev.major, dev.minor, dev.name);
    for c in cols {
        line.push(' ');
        line.push_str(&c.to_string());
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = include_str!("../../tests/fixtures/render/diskstats");

    fn io(
        major: u32,
        minor: u32,
        read_bytes: u64,
        write_bytes: u64,
        reads: u64,
        writes: u64,
    ) -> IoStat {
        IoStat {
            major,
            minor,
            read_bytes,
            write_bytes,
            reads,
            writes,
        }
    }

    #[test]
    fn shows_only_devices_with_io_named_from_the_host() {
        let stats = [io(254, 0, 1_048_576, 4097 * 512 + 100, 30, 7)];
        let out = render(HOST, &stats);
        assert_eq!(
            out,
            " 254       0 vda 30 0 2048 0 7 0 4097 0 0 0 0 0 0 0 0 0 0\n"
        );
    }

    #[test]
    fn keeps_host_order_and_skips_unknown_devices() {
        let stats = [
            io(254, 0, 512, 0, 1, 0),
            io(8, 0, 512, 512, 1, 1),
            io(7, 3, 0, 1024, 0, 2),
        ];
        let out = render(HOST, &stats);
        let names: Vec<_> = out
            .lines()
            .filter_map(|l| l.split_ascii_whitespace().nth(2))
            .collect();
        assert_eq!(names, ["loop3", "vda"]);
        assert!(out.starts_with("   7       3 loop3 0 0 0 0 2 0 2 0 0"));
    }

    #[test]
    fn duplicate_entries_for_a_device_are_summed() {
        let stats = [io(254, 0, 512, 0, 1, 0), io(254, 0, 1024, 512, 2, 1)];
        assert_eq!(
            render(HOST, &stats),
            " 254       0 vda 3 0 3 0 1 0 1 0 0 0 0 0 0 0 0 0 0\n"
        );
    }

    #[test]
    fn host_column_count_is_kept_with_a_minimum() {
        let host =
            "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n   8       1 sda1 1 2 3 4\n";
        let stats = [io(8, 0, 0, 0, 1, 1), io(8, 1, 0, 0, 1, 1)];
        let out = render(host, &stats);
        let widths: Vec<usize> = out
            .lines()
            .map(|l| l.split_ascii_whitespace().count() - 3)
            .collect();
        assert_eq!(widths, [15, 11]);
    }

    #[test]
    fn wide_device_numbers_push_the_columns_like_printf() {
        let host = "259 1234567 nvme0n1p9 0 0 0 0 0 0 0 0 0 0 0\n";
        let out = render(host, &[io(259, 1234567, 0, 0, 0, 0)]);
        assert_eq!(out, " 259 1234567 nvme0n1p9 0 0 0 0 0 0 0 0 0 0 0\n");
    }

    #[test]
    fn no_io_stats_gives_the_host_file() {
        assert_eq!(render(HOST, &[]), HOST);
        assert_eq!(render("", &[]), "");
    }

    #[test]
    fn garbage_lines_are_skipped_without_panicking() {
        let host = "garbage\r\n  254 0\r\n x y z\r\n 254 0 vda 1 2 3\r\n";
        let out = render(host, &[io(254, 0, 0, 0, 5, 0)]);
        assert_eq!(out, " 254       0 vda 5 0 0 0 0 0 0 0 0 0 0\n");
        assert_eq!(render("", &[io(1, 1, 1, 1, 1, 1)]), "");
    }
}
