//! What a recipe is, and what recipes read from: the daemon-wide [`Sources`], and one
//! [`Reading`] per served read, which looks up the reader's cgroups at most once, and only if
//! a recipe asks.

use std::cell::OnceCell;
use std::io;
use std::sync::Arc;

use super::shared_host::{CPUINFO_FRESH_FOR, Shared};
use crate::cgroup::{self, CgroupError, Hierarchies, ReaderCgroups, TaskCache};
use crate::error_chain::Chain;
use crate::fallback;
use crate::host::HostPaths;
use crate::kfile;
use crate::load_tracker::LoadTracker;
use crate::model::{CpuLimits, MemoryLimits};
use crate::reader::PidNsCache;
use crate::{cpulist, render};

/// The lxcfs flags that change what files show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewOptions {
    /// `--enable-cfs`: count CPUs from the CFS quota, not only the cpuset.
    pub cpus_from_quota: bool,
    /// Not `-u`: show the cgroup's swap in meminfo and swaps.
    pub show_swap: bool,
    /// `-l`: per-cgroup loadavg instead of the host's.
    pub cgroup_loadavg: bool,
}

/// Everything a recipe may read from, shared by all reads: the host's files and cgroup
/// hierarchies, the pid-namespace cache, recent task counts, the load tracker, and the flags.
pub struct Sources {
    /// Where the host's files are.
    pub(crate) host: HostPaths,
    /// Where each cgroup hierarchy is mounted.
    pub(crate) hierarchies: Hierarchies,
    /// Inits of the readers' pid namespaces.
    pub(crate) pidns: PidNsCache,
    /// Recent task counts of the readers' cgroups.
    pub(crate) tasks: TaskCache,
    /// The flags.
    pub(crate) opts: ViewOptions,
    /// Per-cgroup load averages, with `-l`.
    pub(crate) loads: Option<Arc<LoadTracker>>,
    /// Clock ticks per second (`getconf CLK_TCK`), the unit of `/proc/stat` and start times.
    pub(crate) user_hz: u64,
    /// The host's `/proc/cpuinfo`, one read serving every reader for a moment.
    pub(crate) cpuinfo: Shared,
}

impl Sources {
    /// The sources of the host at `host`, discovering its cgroup hierarchies now (and starting
    /// the load sampler with `-l`).
    pub fn new(host: HostPaths, opts: ViewOptions) -> Result<Sources, CgroupError> {
        let hierarchies = Hierarchies::discover(&host)?;
        let loads = opts
            .cgroup_loadavg
            .then(|| LoadTracker::start(host.clone()));
        let user_hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|hz| *hz > 0)
            .map_or(100, |hz| hz as u64);
        Ok(Sources {
            pidns: PidNsCache::new(host.clone()),
            tasks: TaskCache::new(host.clone(), cgroup::FRESH_FOR),
            host,
            hierarchies,
            opts,
            loads,
            user_hz,
            cpuinfo: Shared::new("cpuinfo", CPUINFO_FRESH_FOR),
        })
    }

    /// The host's online CPUs; the possible ones if online is unreadable.
    fn host_online(&self) -> Vec<u32> {
        let dir = self.host.sys_cpu_dir();
        ["online", "possible"]
            .iter()
            .filter_map(|f| kfile::read_text(&dir.join(f)).ok())
            .filter_map(|t| cpulist::parse(&t).ok())
            .find(|cpus| !cpus.is_empty())
            .unwrap_or_else(|| vec![0])
    }
}

/// How one served file's content is made for one reader.
pub(crate) trait Recipe: Sync {
    /// The file's whole content for the reader of `r`.
    fn content(&self, r: &Reading<'_>) -> io::Result<String>;
}

/// One read of one file by one reader.
pub(crate) struct Reading<'a> {
    /// What the file is made from.
    pub(crate) src: &'a Sources,
    /// The reader, as the daemon's pid namespace numbers it; 0 for the host.
    pub(crate) pid: u32,
    /// The reader's cgroups, once looked up (`None`: the host's values apply).
    cgroups: OnceCell<Option<ReaderCgroups>>,
}

impl<'a> Reading<'a> {
    /// A read by `pid`.
    pub(crate) fn new(src: &'a Sources, pid: u32) -> Self {
        Reading {
            src,
            pid,
            cgroups: OnceCell::new(),
        }
    }

    /// The flags.
    pub(crate) fn opts(&self) -> ViewOptions {
        self.src.opts
    }

    /// A file of the host's procfs, e.g. `host_file("meminfo")`.
    pub(crate) fn host_file(&self, rel: &str) -> io::Result<String> {
        kfile::read_with(&self.src.host.proc_file(rel), str::to_owned)
    }

    /// The reader's cgroups; `None` for the host (pid 0) or when they cannot be worked out
    /// (the reader exited, say), noted as a fallback.
    pub(crate) fn cgroups(&self) -> Option<&ReaderCgroups> {
        self.cgroups
            .get_or_init(|| {
                if self.pid == 0 {
                    return None;
                }
                match self.src.hierarchies.of_pid(&self.src.host, self.pid) {
                    Ok(cg) => Some(cg),
                    Err(e) => {
                        fallback::note(format_args!("cgroups of pid {}: {}", self.pid, Chain(&e)));
                        None
                    }
                }
            })
            .as_ref()
    }

    /// The reader's cgroups if a recipe looked them up (`Some(None)`: it did, and found
    /// none), without looking them up.
    pub(crate) fn cgroups_if_known(&self) -> Option<Option<&ReaderCgroups>> {
        self.cgroups.get().map(Option::as_ref)
    }

    /// The reader's CPU limits (all online CPUs, no quota, when its cgroups are unknown) and
    /// the host's online CPUs. The quota is looked up only under the CPU-quota view
    /// (`--enable-cfs`), the one view that uses it: otherwise it is `None`, which saves a walk
    /// up the reader's cgroups on every read of `uptime`, `stat`, `cpuinfo` and `online`.
    pub(crate) fn cpu_limits(&self) -> (CpuLimits, Vec<u32>) {
        let online = self.src.host_online();
        let limits = match self.cgroups() {
            Some(cg) => cg.cpu(&online, self.opts().cpus_from_quota),
            None => CpuLimits {
                visible: online.clone(),
                quota_cpus: None,
            },
        };
        (limits, online)
    }

    /// The CPUs the reader is shown, and the host's online CPUs.
    pub(crate) fn shown_cpus(&self) -> (Vec<u32>, Vec<u32>) {
        let (limits, online) = self.cpu_limits();
        (limits.shown(self.opts().cpus_from_quota).to_vec(), online)
    }

    /// The reader's memory numbers, with its swap only when swap can be shown at all.
    pub(crate) fn memory(&self, host_meminfo: &str) -> MemoryLimits {
        let with_swap = render::swap::reads_cgroup_swap(host_meminfo, self.opts().show_swap);
        self.cgroups()
            .map(|cg| cg.memory(with_swap))
            .unwrap_or_default()
    }
}

/// A rendered text, or the host text when rendering produced nothing (unparseable host text).
pub(crate) fn nonempty(rendered: String, host: String) -> String {
    if rendered.is_empty() { host } else { rendered }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonempty_falls_back_to_the_host_text() {
        assert_eq!(nonempty(String::new(), "host".into()), "host");
        assert_eq!(nonempty("ours".into(), "host".into()), "ours");
    }
}
