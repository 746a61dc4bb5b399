//! Block I/O done by a reader's cgroup, per device.

use super::controller::Controller;
use super::membership::{CgDir, ReaderCgroups, Version};
use crate::fallback;
use crate::kfile::read_parsed;
use crate::model::IoStat;

impl ReaderCgroups {
    /// v2 `io.stat`; v1 `blkio.throttle.io_service_bytes_recursive` and
    /// `io_serviced_recursive` (the CFQ-era `blkio.io_*` files are gone since kernel 5.0),
    /// merged per device and sorted by device number. Devices with no I/O at all are left out
    /// (v1 lists every device it has seen). Empty for the root cgroup or when nothing was read.
    pub fn io(&self) -> Vec<IoStat> {
        let mut stats = match self.dir(Controller::Io) {
            Some(cg) if cg.is_root => return Vec::new(),
            Some(cg) if cg.version == Version::V2 => v2(cg),
            Some(cg) => v1(cg),
            None => return Vec::new(),
        };
        stats.retain(|s| s.read_bytes | s.write_bytes | s.reads | s.writes != 0);
        stats.sort_unstable_by_key(|s| (s.major, s.minor));
        stats
    }
}

fn v2(cg: &CgDir) -> Vec<IoStat> {
    fallback::ok(read_parsed(&cg.file("io.stat"), |text| {
        Ok(parse_io_stat(text))
    }))
    .unwrap_or_default()
}

fn v1(cg: &CgDir) -> Vec<IoStat> {
    let mut stats = Vec::new();
    let bytes = cg.file("blkio.throttle.io_service_bytes_recursive");
    let ops = cg.file("blkio.throttle.io_serviced_recursive");
    fallback::ok(read_parsed(&bytes, |t| {
        parse_blkio(t, &mut stats, |s, read, n| {
            if read {
                s.read_bytes = n
            } else {
                s.write_bytes = n
            }
        });
        Ok(())
    }));
    fallback::ok(read_parsed(&ops, |t| {
        parse_blkio(
            t,
            &mut stats,
            |s, read, n| if read { s.reads = n } else { s.writes = n },
        );
        Ok(())
    }));
    stats
}

/// The entry for a device, added if new. Linear: a cgroup touches a handful of devices.
fn entry(stats: &mut Vec<IoStat>, major: u32, minor: u32) -> &mut IoStat {
    let i = match stats
        .iter()
        .position(|s| s.major == major && s.minor == minor)
    {
        Some(i) => i,
        None => {
            stats.push(IoStat {
                major,
                minor,
                ..IoStat::default()
            });
            stats.len() - 1
        }
    };
    &mut stats[i]
}

fn parse_dev(dev: &str) -> Option<(u32, u32)> {
    let (major, minor) = dev.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// v2 `io.stat`: `MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N` per line. Unknown
/// keys and bad lines are skipped.
fn parse_io_stat(text: &str) -> Vec<IoStat> {
    let mut stats = Vec::new();
    for line in text.lines() {
        let mut tokens = line.split_ascii_whitespace();
        let Some((major, minor)) = tokens.next().and_then(parse_dev) else {
            continue;
        };
        let s = entry(&mut stats, major, minor);
        for token in tokens {
            let Some((key, value)) = token.split_once('=') else {
                continue;
            };
            let Ok(n) = value.parse::<u64>() else {
                continue;
            };
            match key {
                "rbytes" => s.read_bytes = s.read_bytes.saturating_add(n),
                "wbytes" => s.write_bytes = s.write_bytes.saturating_add(n),
                "rios" => s.reads = s.reads.saturating_add(n),
                "wios" => s.writes = s.writes.saturating_add(n),
                _ => {}
            }
        }
    }
    stats
}

/// v1 throttle files: `MAJ:MIN Read N`, `MAJ:MIN Write N` (and Sync, Async, Discard, Total,
/// which we do not need), then a final `Total N`. `set(stat, is_read, n)` stores a value.
fn parse_blkio(text: &str, stats: &mut Vec<IoStat>, set: impl Fn(&mut IoStat, bool, u64)) {
    for line in text.lines() {
        let mut tokens = line.split_ascii_whitespace();
        let (Some(dev), Some(op), Some(value)) = (tokens.next(), tokens.next(), tokens.next())
        else {
            continue;
        };
        let is_read = match op {
            "Read" => true,
            "Write" => false,
            _ => continue,
        };
        let (Some((major, minor)), Ok(n)) = (parse_dev(dev), value.parse::<u64>()) else {
            continue;
        };
        set(entry(stats, major, minor), is_read, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_stat_lines() {
        let t = "8:0 rbytes=1024 wbytes=2048 rios=3 wios=4 dbytes=0 dios=0\n\
                 253:1 rbytes=10 wbytes=0 rios=1 wios=0 dbytes=0 dios=0 unknown=9\r\n\
                 junk line\n";
        let s = parse_io_stat(t);
        assert_eq!(
            s,
            vec![
                IoStat {
                    major: 8,
                    minor: 0,
                    read_bytes: 1024,
                    write_bytes: 2048,
                    reads: 3,
                    writes: 4
                },
                IoStat {
                    major: 253,
                    minor: 1,
                    read_bytes: 10,
                    write_bytes: 0,
                    reads: 1,
                    writes: 0
                },
            ]
        );
    }

    #[test]
    fn blkio_lines_ignore_totals() {
        let t = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 1\n8:0 Async 2\n8:0 Discard 0\n8:0 Total 12288\nTotal 12288\n";
        let mut stats = Vec::new();
        parse_blkio(t, &mut stats, |s, read, n| {
            if read {
                s.read_bytes = n
            } else {
                s.write_bytes = n
            }
        });
        assert_eq!(
            stats,
            vec![IoStat {
                major: 8,
                minor: 0,
                read_bytes: 4096,
                write_bytes: 8192,
                ..Default::default()
            }]
        );
    }
}
