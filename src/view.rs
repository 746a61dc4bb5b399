//! What each path of the mount holds for a given reader: the glue between the FUSE layer
//! and the cgroup readers and renderers.
//!
//! Every failure on the way (a reader that vanished, an unreadable cgroup file) degrades to
//! the host's own value for the numbers concerned, never to an error or an empty file.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use log::debug;

use crate::cgroup::{Hierarchies, ReaderCgroups, count_tasks};
use crate::cpulist;
use crate::fs::{Node, NodeKind, Provider};
use crate::host::HostPaths;
use crate::loadavg::LoadTracker;
use crate::model::{CpuLimits, CpuUsage, MemoryLimits};
use crate::reader::PidNsCache;
use crate::render;

/// The lxcfs flags that change what files show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewOptions {
    /// `--enable-cfs`: count CPUs from the CFS quota, not only the cpuset.
    pub quota_view: bool,
    /// Not `-u`: show the cgroup's swap in meminfo and swaps.
    pub swap_view: bool,
    /// `-l`: per-cgroup loadavg instead of the host's.
    pub loadavg: bool,
}

/// A generated file of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum File {
    /// Computed from the reader's cgroups.
    FromCgroups(CgFile),
    /// Needs the reader's cgroups only inside a container's pid namespace.
    Uptime,
    /// Needs the reader's cgroups only with `-l`.
    Loadavg,
    /// `offline`: always empty, as no hidden CPU is "offline" from the reader's view.
    CpuOffline,
}

/// A generated file computed from the reader's cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CgFile {
    Meminfo,
    Cpuinfo,
    Stat,
    Diskstats,
    Swaps,
    Slabinfo,
    Pressure(&'static str),
    /// `online`, `possible`, `present`: the shown CPUs.
    CpuList,
}

use CgFile::*;
use File::FromCgroups as Cg;

/// The fixed part of the tree: directories and generated files.
const TREE: &[(&str, Option<File>)] = &[
    ("", None),
    ("proc", None),
    ("proc/cpuinfo", Some(Cg(Cpuinfo))),
    ("proc/diskstats", Some(Cg(Diskstats))),
    ("proc/loadavg", Some(File::Loadavg)),
    ("proc/meminfo", Some(Cg(Meminfo))),
    ("proc/slabinfo", Some(Cg(Slabinfo))),
    ("proc/stat", Some(Cg(Stat))),
    ("proc/swaps", Some(Cg(Swaps))),
    ("proc/uptime", Some(File::Uptime)),
    ("proc/pressure", None),
    ("proc/pressure/cpu", Some(Cg(Pressure("cpu")))),
    ("proc/pressure/io", Some(Cg(Pressure("io")))),
    ("proc/pressure/memory", Some(Cg(Pressure("memory")))),
    ("sys", None),
    ("sys/devices", None),
    ("sys/devices/system", None),
    (CPU_DIR, None),
    ("sys/devices/system/cpu/online", Some(Cg(CpuList))),
    ("sys/devices/system/cpu/possible", Some(Cg(CpuList))),
    ("sys/devices/system/cpu/present", Some(Cg(CpuList))),
    ("sys/devices/system/cpu/offline", Some(File::CpuOffline)),
];

/// The directory whose other entries are passed through from the host, filtered.
const CPU_DIR: &str = "sys/devices/system/cpu";

/// Every generated file's path, in tree order (for `show` and tests).
pub fn generated_files() -> impl Iterator<Item = &'static str> {
    TREE.iter().filter(|(_, f)| f.is_some()).map(|(p, _)| *p)
}

/// Whether `path` (relative, no leading slash) is a fixed file or directory of the tree.
#[cfg(test)]
pub(crate) fn is_tree_path(path: &str) -> bool {
    tree_entry(path).is_some()
}

/// Per-reader content of the whole tree.
pub struct View {
    host: HostPaths,
    hierarchies: Hierarchies,
    pidns: PidNsCache,
    opts: ViewOptions,
    loads: Option<Arc<LoadTracker>>,
    user_hz: u64,
}

impl View {
    /// A view of the host at `host`, discovering its cgroup hierarchies now.
    pub fn new(host: HostPaths, opts: ViewOptions) -> Result<View, crate::cgroup::CgroupError> {
        let hierarchies = Hierarchies::discover(&host)?;
        let loads = opts.loadavg.then(|| LoadTracker::start(host.clone()));
        let user_hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|hz| *hz > 0)
            .map_or(100, |hz| hz as u64);
        Ok(View {
            pidns: PidNsCache::new(host.clone()),
            host,
            hierarchies,
            opts,
            loads,
            user_hz,
        })
    }

    fn cgroups(&self, pid: u32) -> Option<ReaderCgroups> {
        if pid == 0 {
            return None;
        }
        match self.hierarchies.of_pid(&self.host, pid) {
            Ok(cg) => Some(cg),
            Err(e) => {
                debug!("serving host values to pid {pid}: {e}");
                None
            }
        }
    }

    fn host_proc(&self, rel: &str) -> io::Result<String> {
        std::fs::read_to_string(self.host.proc_file(rel))
    }

    /// The host's online CPUs; the possible ones if online is unreadable.
    fn host_online(&self) -> Vec<u32> {
        let dir = self.host.sys_cpu_dir();
        ["online", "possible"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok())
            .filter_map(|t| cpulist::parse(&t).ok())
            .find(|cpus| !cpus.is_empty())
            .unwrap_or_else(|| vec![0])
    }

    /// The reader's CPU limits (all online CPUs, no quota, when its cgroups are unknown) and
    /// the host's online CPUs.
    fn cpu_limits(&self, cg: Option<&ReaderCgroups>) -> (CpuLimits, Vec<u32>) {
        let online = self.host_online();
        let limits = match cg {
            Some(cg) => cg.cpu(&online),
            None => CpuLimits {
                visible: online.clone(),
                quota_cpus: None,
            },
        };
        (limits, online)
    }

    /// The CPUs the reader is shown, and the host's online CPUs.
    fn shown_cpus(&self, cg: Option<&ReaderCgroups>) -> (Vec<u32>, Vec<u32>) {
        let (limits, online) = self.cpu_limits(cg);
        (limits.shown(self.opts.quota_view).to_vec(), online)
    }

    fn generate(&self, file: File, pid: u32) -> io::Result<String> {
        match file {
            Cg(file) => self.render_with_cgroups(file, self.cgroups(pid).as_ref()),
            File::Uptime => self.uptime(pid),
            File::Loadavg => self.loadavg(pid),
            File::CpuOffline => Ok("\n".to_string()),
        }
    }

    fn render_with_cgroups(&self, file: CgFile, cg: Option<&ReaderCgroups>) -> io::Result<String> {
        match file {
            Meminfo => {
                let host = self.host_proc("meminfo")?;
                let mem = self.memory(cg, &host);
                Ok(nonempty(
                    render::meminfo::render_meminfo(&host, &mem, self.opts.swap_view),
                    host,
                ))
            }
            Swaps => {
                let host = self.host_proc("swaps")?;
                let meminfo = self.host_proc("meminfo")?;
                let mem = self.memory(cg, &meminfo);
                if render::meminfo::host_swap_applies(&meminfo, &mem, self.opts.swap_view) {
                    return Ok(host);
                }
                let swap = render::meminfo::swap_kb(&meminfo, &mem, self.opts.swap_view);
                Ok(render::swaps::render_swaps(&host, swap))
            }
            Cpuinfo => {
                let host = self.host_proc("cpuinfo")?;
                let (shown, online) = self.shown_cpus(cg);
                if shown == online {
                    return Ok(host);
                }
                Ok(nonempty(
                    render::cpuinfo::render_cpuinfo(&host, &shown),
                    host,
                ))
            }
            Stat => {
                let host = self.host_proc("stat")?;
                let (shown, online) = self.shown_cpus(cg);
                let usage = cg.map(ReaderCgroups::cpu_usage).unwrap_or_default();
                if usage == CpuUsage::Unknown && shown == online {
                    return Ok(host);
                }
                let tasks = cg
                    .and_then(ReaderCgroups::task_dir)
                    .map(|dir| count_tasks(&self.host, &dir).0);
                Ok(nonempty(
                    render::stat::render_stat(&host, &shown, &usage, tasks, self.user_hz),
                    host,
                ))
            }
            Diskstats => {
                let host = self.host_proc("diskstats")?;
                let io = cg.map(ReaderCgroups::io).unwrap_or_default();
                if io.is_empty() {
                    return Ok(host);
                }
                Ok(nonempty(
                    render::diskstats::render_diskstats(&host, &io),
                    host,
                ))
            }
            Slabinfo => match cg.and_then(ReaderCgroups::slabinfo) {
                Some(text) => Ok(text),
                None => self.host_proc("slabinfo"),
            },
            Pressure(resource) => match cg.and_then(|cg| cg.pressure(resource)) {
                Some(text) => Ok(text),
                None => self.host_proc(&format!("pressure/{resource}")),
            },
            CpuList => {
                let (limits, _) = self.cpu_limits(cg);
                let shown = limits.shown(self.opts.quota_view);
                // Under the quota view the CPUs are renumbered from 0, as in cpuinfo.
                let list = if self.opts.quota_view && limits.quota_cpus.is_some() {
                    cpulist::format(&(0..shown.len() as u32).collect::<Vec<_>>())
                } else {
                    cpulist::format(shown)
                };
                Ok(format!("{list}\n"))
            }
        }
    }

    /// The reader's memory numbers, with its swap only when swap is shown at all.
    fn memory(&self, cg: Option<&ReaderCgroups>, host_meminfo: &str) -> MemoryLimits {
        let with_swap = self.opts.swap_view
            && render::meminfo::host_kb(host_meminfo, "SwapTotal").unwrap_or(0) > 0;
        cg.map(|cg| cg.memory(with_swap)).unwrap_or_default()
    }

    fn uptime(&self, pid: u32) -> io::Result<String> {
        let init = match self.pidns.init_of(pid) {
            Ok(Some(init)) if pid != 0 => init,
            Ok(_) => return self.host_proc("uptime"),
            Err(e) => {
                debug!("host uptime for pid {pid}: {e}");
                return self.host_proc("uptime");
            }
        };
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
            .map_err(io::Error::from)?;
        let now = now.tv_sec() as f64 + now.tv_nsec() as f64 / 1e9;
        let age = now - init.start_ticks as f64 / self.user_hz as f64;
        let cg = self.cgroups(pid);
        let cg = cg.as_ref();
        let (shown, _) = self.shown_cpus(cg);
        let busy = cg
            .and_then(|cg| cg.cpu_usage().total_busy_ns())
            .map(|ns| ns as f64 / 1e9);
        Ok(render::uptime::render_uptime(age, shown.len(), busy))
    }

    fn loadavg(&self, pid: u32) -> io::Result<String> {
        let dir = self
            .loads
            .as_ref()
            .and_then(|_| self.cgroups(pid))
            .and_then(|cg| cg.task_dir());
        let (Some(loads), Some(dir)) = (&self.loads, dir) else {
            return self.host_proc("loadavg");
        };
        let (tasks, newest) = count_tasks(&self.host, &dir);
        let load = loads.load(&dir, tasks.running + tasks.blocked);
        let last_pid = newest
            .and_then(|task| self.pidns.pid_as_seen_by(pid, task))
            .unwrap_or(0);
        Ok(render::loadavg::render_loadavg(
            &load,
            tasks.running,
            tasks.total,
            last_pid,
        ))
    }

    /// Path on the host of a passed-through entry below `sys/devices/system/cpu`.
    fn host_cpu_path(&self, rest: &str) -> PathBuf {
        self.host.sys_cpu_dir().join(rest)
    }

    /// Whether a `sys/devices/system/cpu` entry name is hidden from this reader.
    fn hidden_cpu_entry(&self, name: &str, shown: &[u32]) -> bool {
        cpu_dir_index(name).is_some_and(|n| !shown.contains(&n))
    }

    fn passthrough_node(&self, rest: &str, pid: u32) -> Option<Node> {
        let first = rest.split('/').next().unwrap_or(rest);
        let per_reader = cpu_dir_index(first).is_some();
        if per_reader {
            let cg = self.cgroups(pid);
            let (shown, _) = self.shown_cpus(cg.as_ref());
            if self.hidden_cpu_entry(first, &shown) {
                return None;
            }
        }
        let meta = std::fs::symlink_metadata(self.host_cpu_path(rest)).ok()?;
        Some(Node {
            kind: kind_from(meta.file_type()),
            same_for_all: !per_reader,
        })
    }
}

/// The kind of a passed-through host entry (symlinks not followed).
fn kind_from(file_type: std::fs::FileType) -> NodeKind {
    if file_type.is_symlink() {
        NodeKind::Symlink
    } else if file_type.is_dir() {
        NodeKind::Dir
    } else {
        NodeKind::File
    }
}

/// `Some(n)` for a `cpuN` directory name.
fn cpu_dir_index(name: &str) -> Option<u32> {
    name.strip_prefix("cpu")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()
}

/// A rendered text, or the host text when rendering produced nothing (unparseable host text).
fn nonempty(rendered: String, host: String) -> String {
    if rendered.is_empty() { host } else { rendered }
}

fn tree_entry(path: &str) -> Option<Option<File>> {
    TREE.iter().find(|(p, _)| *p == path).map(|(_, f)| *f)
}

fn kind_of(entry: Option<File>) -> NodeKind {
    if entry.is_some() {
        NodeKind::File
    } else {
        NodeKind::Dir
    }
}

/// The part of `path` below the passed-through CPU directory, if it is there.
fn below_cpu_dir(path: &str) -> Option<&str> {
    path.strip_prefix(CPU_DIR)?.strip_prefix('/')
}

impl Provider for View {
    fn node(&self, path: &str, pid: u32) -> Option<Node> {
        if let Some(entry) = tree_entry(path) {
            return Some(Node {
                kind: kind_of(entry),
                same_for_all: true,
            });
        }
        self.passthrough_node(below_cpu_dir(path)?, pid)
    }

    fn list(&self, path: &str, pid: u32) -> io::Result<Vec<(String, NodeKind)>> {
        let mut out: Vec<(String, NodeKind)> = TREE
            .iter()
            .filter(|(p, _)| !p.is_empty() && Path::new(p).parent() == Some(Path::new(path)))
            .map(|(p, f)| (p.rsplit('/').next().unwrap_or(p).to_string(), kind_of(*f)))
            .collect();
        let host_dir = if path == CPU_DIR {
            Some(self.host.sys_cpu_dir())
        } else {
            below_cpu_dir(path).map(|rest| self.host_cpu_path(rest))
        };
        if let Some(dir) = host_dir {
            // Which cpuN entries to hide is decided once for the whole listing.
            let shown = (path == CPU_DIR).then(|| self.shown_cpus(self.cgroups(pid).as_ref()).0);
            for entry in std::fs::read_dir(dir)?.flatten() {
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let hidden = shown
                    .as_ref()
                    .is_some_and(|shown| self.hidden_cpu_entry(&name, shown));
                if hidden || out.iter().any(|(n, _)| *n == name) {
                    continue;
                }
                let Ok(file_type) = entry.file_type() else {
                    continue;
                };
                out.push((name, kind_from(file_type)));
            }
        }
        Ok(out)
    }

    fn content(&self, path: &str, pid: u32) -> io::Result<Vec<u8>> {
        match tree_entry(path) {
            Some(Some(file)) => Ok(self.generate(file, pid)?.into_bytes()),
            Some(None) => Err(io::Error::from_raw_os_error(nix::libc::EISDIR)),
            None => {
                let rest =
                    below_cpu_dir(path).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
                std::fs::read(self.host_cpu_path(rest))
            }
        }
    }

    fn readlink(&self, path: &str) -> io::Result<Vec<u8>> {
        let rest =
            below_cpu_dir(path).ok_or_else(|| io::Error::from_raw_os_error(nix::libc::EINVAL))?;
        Ok(std::fs::read_link(self.host_cpu_path(rest))?
            .into_os_string()
            .into_encoded_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_directory_names() {
        assert_eq!(cpu_dir_index("cpu0"), Some(0));
        assert_eq!(cpu_dir_index("cpu17"), Some(17));
        assert_eq!(cpu_dir_index("cpufreq"), None);
        assert_eq!(cpu_dir_index("cpu"), None);
    }

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
        assert_eq!(
            below_cpu_dir("sys/devices/system/cpu/cpu0/topology"),
            Some("cpu0/topology")
        );
        assert_eq!(below_cpu_dir("sys/devices/system/cpux"), None);
    }
}
