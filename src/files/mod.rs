//! One home per served file: the tree, as one table from path to recipe, and one module per
//! recipe, which gathers what a reader's file is made of and calls its pure renderer
//! (`crate::render`). What each file shows: `docs/semantics.md`. Adding a file:
//! `docs/contributing.md`, "Adding a served file".
//!
//! A recipe never fails for want of something about the reader: what cannot be read is noted
//! (`crate::fallback`) and the host's value stands. It fails only when the host's own file
//! cannot be read, which the reader then gets as the error.

mod context;
pub(crate) mod cpu_dir;
mod cpu_list;
mod cpuinfo;
mod diskstats;
mod loadavg;
mod meminfo;
mod pressure;
mod shared_host;
mod slabinfo;
mod stat;
mod swaps;
mod sysinfo;
mod uptime;

use std::path::Path;

pub(crate) use context::{Reading, Recipe};
pub use context::{Sources, ViewOptions};
pub(crate) use cpu_dir::{CPU_DIR, below_cpu_dir};
pub(crate) use sysinfo::sysinfo;

use crate::cgroup::Psi;

/// What a fixed path of the tree is.
#[derive(Clone, Copy)]
pub(crate) enum Entry {
    /// A directory.
    Dir,
    /// A generated file and how it is made.
    File(&'static dyn Recipe),
}

impl Entry {
    /// Whether this is a directory.
    pub(crate) fn is_dir(self) -> bool {
        matches!(self, Entry::Dir)
    }
}

use Entry::{Dir, File};

/// The fixed part of the tree, in listing order. Entries below [`CPU_DIR`] that are not
/// listed here are the host's, passed through (`cpu_dir`).
const TREE: &[(&str, Entry)] = &[
    ("", Dir),
    ("proc", Dir),
    ("proc/cpuinfo", File(&cpuinfo::Cpuinfo)),
    ("proc/diskstats", File(&diskstats::Diskstats)),
    ("proc/loadavg", File(&loadavg::Loadavg)),
    ("proc/meminfo", File(&meminfo::Meminfo)),
    ("proc/slabinfo", File(&slabinfo::Slabinfo)),
    ("proc/stat", File(&stat::Stat)),
    ("proc/swaps", File(&swaps::Swaps)),
    ("proc/uptime", File(&uptime::Uptime)),
    ("proc/pressure", Dir),
    ("proc/pressure/cpu", File(&pressure::Pressure(Psi::Cpu))),
    ("proc/pressure/io", File(&pressure::Pressure(Psi::Io))),
    (
        "proc/pressure/memory",
        File(&pressure::Pressure(Psi::Memory)),
    ),
    ("sys", Dir),
    ("sys/devices", Dir),
    ("sys/devices/system", Dir),
    (CPU_DIR, Dir),
    ("sys/devices/system/cpu/online", File(&cpu_list::CpuList)),
    ("sys/devices/system/cpu/possible", File(&cpu_list::CpuList)),
    ("sys/devices/system/cpu/present", File(&cpu_list::CpuList)),
    ("sys/devices/system/cpu/offline", File(&cpu_list::Offline)),
];

/// The fixed entry at `path` (relative, no leading slash), if there is one.
pub(crate) fn lookup(path: &str) -> Option<Entry> {
    TREE.iter().find(|(p, _)| *p == path).map(|(_, e)| *e)
}

/// Every generated file's path, in tree order (for `show` and tests).
pub fn generated_files() -> impl Iterator<Item = &'static str> {
    TREE.iter()
        .filter(|(_, e)| matches!(e, File(_)))
        .map(|(p, _)| *p)
}

/// The fixed entries directly in directory `dir`, by name.
pub(crate) fn children(dir: &str) -> impl Iterator<Item = (&'static str, Entry)> + '_ {
    TREE.iter()
        .filter(move |(p, _)| !p.is_empty() && Path::new(p).parent() == Some(Path::new(dir)))
        .map(|(p, e)| (p.rsplit('/').next().unwrap_or(p), *e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_has_every_file_lxcfs_serves() {
        let files: Vec<_> = generated_files().collect();
        for f in [
            "proc/meminfo",
            "proc/cpuinfo",
            "proc/stat",
            "proc/uptime",
            "proc/loadavg",
            "proc/diskstats",
            "proc/swaps",
            "proc/slabinfo",
            "proc/pressure/io",
            "sys/devices/system/cpu/online",
        ] {
            assert!(files.contains(&f), "{f} missing");
        }
    }

    #[test]
    fn every_path_is_listed_once_under_a_listed_directory() {
        for (i, (path, _)) in TREE.iter().enumerate() {
            assert!(
                TREE[..i].iter().all(|(p, _)| p != path),
                "{path} is in the tree twice"
            );
            if path.is_empty() {
                continue;
            }
            let parent = path.rsplit_once('/').map_or("", |(dir, _)| dir);
            assert!(
                matches!(lookup(parent), Some(Dir)),
                "{path}: parent {parent:?} is not a directory of the tree"
            );
            let name = path.rsplit('/').next().unwrap_or(path);
            assert_eq!(
                children(parent).filter(|(n, _)| *n == name).count(),
                1,
                "{path} listed once in {parent:?}"
            );
        }
        let proc: Vec<_> = children("proc").map(|(n, _)| n).collect();
        assert_eq!(
            proc,
            [
                "cpuinfo",
                "diskstats",
                "loadavg",
                "meminfo",
                "slabinfo",
                "stat",
                "swaps",
                "uptime",
                "pressure"
            ]
        );
        let pressure: Vec<_> = children("proc/pressure")
            .map(|(n, e)| (n, e.is_dir()))
            .collect();
        assert_eq!(pressure, [("cpu", false), ("io", false), ("memory", false)]);
    }
}
