//! The tree as the FUSE layer sees it: each path looked up in the registry (`crate::files`),
//! everything else below `sys/devices/system/cpu` passed through from the host.
//!
//! Each served read leaves one debug line saying who read what and, when the reader got host
//! values, why: `req=7 pid=4242 file=proc/meminfo bytes=1436 fallbacks=[...]`.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use log::debug;

use crate::cgroup::CgroupError;
use crate::error_chain::Chain;
use crate::fallback;
use crate::files::{self, Entry, Reading, Sources, below_cpu_dir};
use crate::fs::{Caller, Group, Node, NodeKind, Provider, Rendered};
use crate::host::HostPaths;

pub use crate::files::{ViewOptions, generated_files};

/// Per-reader content of the whole tree.
pub struct View {
    src: Sources,
    /// Whether files are rendered for their readers (true) or are the host's own (false):
    /// the switch lxcfs flips on SIGUSR2 ("non-virtualization mode").
    virtualized: AtomicBool,
}

impl View {
    /// A view of the host at `host`, discovering its cgroup hierarchies now.
    pub fn new(host: HostPaths, opts: ViewOptions) -> Result<View, CgroupError> {
        Ok(View {
            src: Sources::new(host, opts)?,
            virtualized: AtomicBool::new(true),
        })
    }

    /// Renders files for their readers (`true`, the default) or serves the host's own files.
    pub fn set_virtualized(&self, on: bool) {
        self.virtualized.store(on, Ordering::Relaxed);
    }

    /// Whether files are rendered for their readers.
    pub fn virtualized(&self) -> bool {
        self.virtualized.load(Ordering::Relaxed)
    }

    /// The content of `path` for `caller`, and the fallbacks it took (why the reader got
    /// host values for some numbers).
    pub fn serve(&self, path: &str, caller: Caller) -> (io::Result<Vec<u8>>, Vec<String>) {
        fallback::collect(|| self.make(path, &Reading::new(&self.src, caller.pid)))
    }

    /// What `sysinfo(2)` answers `pid` (the seccomp agent's numbers, made from the same
    /// files `pid` reads), and the fallbacks it took.
    pub fn sysinfo(&self, pid: u32) -> (io::Result<crate::model::Sysinfo>, Vec<String>) {
        fallback::collect(|| files::sysinfo(&Reading::new(&self.src, pid)))
    }

    /// The content of `path` for the reader of `reading`.
    fn make(&self, path: &str, reading: &Reading<'_>) -> io::Result<Vec<u8>> {
        crate::stats::read();
        match files::lookup(path) {
            Some(Entry::File(_)) if !self.virtualized() => {
                crate::kfile::read_bytes(&self.src.host.host_path(&Path::new("/").join(path)))
            }
            Some(Entry::File(recipe)) => Ok(recipe.content(reading)?.into_bytes()),
            Some(Entry::Dir) => Err(io::Error::from_raw_os_error(nix::libc::EISDIR)),
            None => {
                let rest =
                    below_cpu_dir(path).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
                files::cpu_dir::content(&self.src, rest)
            }
        }
    }
}

/// The group of readers in no cgroup the daemon can tell: the host (pid 0), and readers in a
/// pid namespace it cannot see.
const NO_PID: &str = "readers with no pid (the host, unseen pid namespaces)";
/// The group of readers whose cgroups cannot be found (gone by now, or outside the mounted
/// hierarchies).
const UNKNOWN: &str = "readers whose cgroups are unknown";

impl View {
    /// The group of the reader of `reading`: its cgroup (see [`ReaderCgroups::identity`]),
    /// from what rendering its file looked up, else looked up now (a file that needs no
    /// cgroup, `proc/uptime`).
    ///
    /// [`ReaderCgroups::identity`]: crate::cgroup::ReaderCgroups::identity
    fn group(&self, reading: &Reading<'_>) -> Group {
        if reading.pid == 0 {
            return Group::new(NO_PID);
        }
        let looked_up;
        let cgroups = match reading.cgroups_if_known() {
            Some(known) => known,
            None => {
                looked_up = self.src.hierarchies.of_pid(&self.src.host, reading.pid);
                looked_up.as_ref().ok()
            }
        };
        match cgroups.and_then(|cg| cg.identity()) {
            Some(dir) => Group::new(dir.to_string_lossy()),
            None => Group::new(UNKNOWN),
        }
    }

    /// Logs one served read: who read what, and the fallbacks it took.
    fn log_read(path: &str, caller: Caller, result: &io::Result<Vec<u8>>, fallbacks: &[String]) {
        let Caller { pid, request } = caller;
        match result {
            Ok(bytes) => debug!(
                "req={request} pid={pid} file={path} bytes={} fallbacks=[{}]",
                bytes.len(),
                fallbacks.join("; ")
            ),
            Err(e) => debug!(
                "req={request} pid={pid} file={path} error=\"{}\" fallbacks=[{}]",
                Chain(e),
                fallbacks.join("; ")
            ),
        }
    }
}

/// The kind of node a fixed entry of the tree is.
fn entry_kind(entry: Entry) -> NodeKind {
    if entry.is_dir() {
        NodeKind::Dir
    } else {
        NodeKind::File
    }
}

/// The kind of node a passed-through host entry is (symlinks not followed).
fn host_kind(file_type: std::fs::FileType) -> NodeKind {
    if file_type.is_symlink() {
        NodeKind::Symlink
    } else if file_type.is_dir() {
        NodeKind::Dir
    } else {
        NodeKind::File
    }
}

impl Provider for View {
    fn node(&self, path: &str, caller: Caller) -> Option<Node> {
        if let Some(entry) = files::lookup(path) {
            return Some(Node {
                kind: entry_kind(entry),
                same_for_all: true,
            });
        }
        let host = files::cpu_dir::entry(&self.src, below_cpu_dir(path)?, caller.pid)?;
        Some(Node {
            kind: host_kind(host.file_type),
            same_for_all: !host.per_reader,
        })
    }

    fn list(&self, path: &str, caller: Caller) -> io::Result<Vec<(String, NodeKind)>> {
        let fixed: Vec<(&str, Entry)> = files::children(path).collect();
        let passed = files::cpu_dir::list(&self.src, path, caller.pid, |name| {
            fixed.iter().any(|(n, _)| *n == name)
        })?;
        Ok(fixed
            .iter()
            .map(|&(name, entry)| (name.to_string(), entry_kind(entry)))
            .chain(passed.into_iter().map(|(name, t)| (name, host_kind(t))))
            .collect())
    }

    fn content(&self, path: &str, caller: Caller) -> io::Result<Vec<u8>> {
        let (result, fallbacks) = self.serve(path, caller);
        View::log_read(path, caller, &result, &fallbacks);
        result
    }

    fn render(&self, path: &str, caller: Caller) -> io::Result<Rendered> {
        let reading = Reading::new(&self.src, caller.pid);
        let (result, fallbacks) = fallback::collect(|| self.make(path, &reading));
        View::log_read(path, caller, &result, &fallbacks);
        Ok(Rendered {
            bytes: result?,
            group: self.group(&reading),
        })
    }

    fn readlink(&self, path: &str) -> io::Result<Vec<u8>> {
        let rest =
            below_cpu_dir(path).ok_or_else(|| io::Error::from_raw_os_error(nix::libc::EINVAL))?;
        files::cpu_dir::readlink(&self.src, rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Fixture;

    const PID: u32 = 300;

    /// A v1 host whose reader has a memory limit but whose `memory.stat` is gone.
    fn host() -> Fixture {
        let fx = Fixture::new();
        fx.mountinfo(
            "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:19 - cgroup cgroup rw,memory\n",
        )
        .cgroup(PID, "9:memory:/box\n")
        .write(
            "proc/meminfo",
            "MemTotal:        8000000 kB\nMemFree:         7000000 kB\n",
        )
        .write(
            "sys/fs/cgroup/memory/box/memory.limit_in_bytes",
            "268435456\n",
        )
        .write(
            "sys/fs/cgroup/memory/box/memory.usage_in_bytes",
            "1048576\n",
        );
        fx
    }

    fn view(fx: &Fixture) -> View {
        crate::testutil::debug_log_on();
        let opts = ViewOptions {
            cpus_from_quota: false,
            show_swap: true,
            cgroup_loadavg: false,
        };
        View::new(fx.host.clone(), opts).expect("view")
    }

    #[test]
    fn a_read_says_which_file_made_it_fall_back() {
        let fx = host();
        let (bytes, fallbacks) = view(&fx).serve(
            "proc/meminfo",
            Caller {
                pid: PID,
                request: 9,
            },
        );
        let text = String::from_utf8(bytes.expect("served")).expect("utf-8");
        assert!(text.starts_with("MemTotal:         262144 kB\n"), "{text}");
        assert_eq!(fallbacks.len(), 1, "{fallbacks:?}");
        assert!(
            fallbacks[0].contains("box/memory.stat") && fallbacks[0].contains("No such file"),
            "names the cgroup file and the error: {fallbacks:?}"
        );
    }

    #[test]
    fn a_reader_that_is_gone_gets_host_values_and_says_why() {
        let fx = host();
        let (bytes, fallbacks) = view(&fx).serve(
            "proc/meminfo",
            Caller {
                pid: 4242,
                request: 1,
            },
        );
        let text = String::from_utf8(bytes.expect("served")).expect("utf-8");
        assert!(text.starts_with("MemTotal:        8000000 kB\n"), "{text}");
        assert_eq!(fallbacks.len(), 1, "{fallbacks:?}");
        assert!(
            fallbacks[0].starts_with("cgroups of pid 4242: cannot read ")
                && fallbacks[0].contains("proc/4242/cgroup"),
            "{fallbacks:?}"
        );
    }

    #[test]
    fn sysinfo_is_made_from_the_readers_meminfo() {
        let fx = host();
        fx.write(
            "proc/meminfo",
            "MemTotal:        8000000 kB\nMemFree:         7000000 kB\n\
             Buffers:            1000 kB\nShmem:              2000 kB\n",
        )
        .write("proc/uptime", "100.50 150.00\n")
        .write("proc/loadavg", "0.50 0.25 0.00 1/99 42\n")
        .write(
            "sys/fs/cgroup/memory/box/memory.stat",
            "total_cache 4096000\ntotal_shmem 8192\n",
        );
        let v = view(&fx);
        let reader = Caller {
            pid: PID,
            request: 1,
        };
        let meminfo = String::from_utf8(v.serve("proc/meminfo", reader).0.unwrap()).unwrap();
        let (s, _) = v.sysinfo(PID);
        let s = s.expect("sysinfo");
        let kb = |key| crate::render::meminfo_kb(&meminfo, key).unwrap() * 1024;
        assert_eq!(s.totalram, 268_435_456);
        assert_eq!(
            (s.totalram, s.freeram, s.sharedram, s.bufferram),
            (kb("MemTotal"), kb("MemFree"), kb("Shmem"), kb("Buffers"))
        );
        assert_eq!(s.sharedram, 8192);
        assert_eq!(
            s.loads,
            [32768, 16384, 0],
            "the host's loadavg file, without -l"
        );
    }

    #[test]
    fn a_reader_is_grouped_by_its_memory_cgroup_whether_or_not_its_file_needed_it() {
        let fx = host();
        fx.write("sys/devices/system/cpu/kernel_max", "8191\n");
        let v = view(&fx);
        let group = |path: &str, pid: u32| {
            let reader = Caller { pid, request: 1 };
            v.render(path, reader).expect(path).group.to_string()
        };
        let own = fx.host.host_path(Path::new("/sys/fs/cgroup/memory/box"));
        assert_eq!(group("proc/meminfo", PID), own.to_string_lossy());
        assert_eq!(
            group("sys/devices/system/cpu/kernel_max", PID),
            own.to_string_lossy(),
            "looked up for a file made without it"
        );
        assert_eq!(group("proc/meminfo", 0), NO_PID);
        assert_eq!(
            group("proc/meminfo", 4242),
            UNKNOWN,
            "a reader that is gone"
        );
    }

    #[test]
    fn files_below_the_cpu_directory_are_the_hosts_bytes() {
        let fx = host();
        fx.write("sys/devices/system/cpu/online", "0-1\n")
            .write("sys/devices/system/cpu/kernel_max", "8191\n")
            .write("sys/devices/system/cpu/cpu1/topology/core_id", "1\n");
        let v = view(&fx);
        let read = |path: &str| v.serve(path, Caller::HOST).0.expect(path);
        assert_eq!(read("sys/devices/system/cpu/kernel_max"), b"8191\n");
        assert_eq!(read("sys/devices/system/cpu/cpu1/topology/core_id"), b"1\n");
        let (missing, _) = v.serve("sys/devices/system/cpu/nope", Caller::HOST);
        assert_eq!(
            missing.expect_err("no such host file").kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn switched_off_every_file_is_the_hosts() {
        let fx = host();
        let v = view(&fx);
        let reader = Caller {
            pid: PID,
            request: 1,
        };
        v.set_virtualized(false);
        let (host_bytes, fallbacks) = v.serve("proc/meminfo", reader);
        v.set_virtualized(true);
        assert_eq!(
            host_bytes.expect("served"),
            std::fs::read(fx.host.proc_file("meminfo")).unwrap()
        );
        assert!(fallbacks.is_empty(), "{fallbacks:?}");
        let (own, _) = v.serve("proc/meminfo", reader);
        assert!(
            String::from_utf8(own.unwrap())
                .unwrap()
                .starts_with("MemTotal:         262144 kB\n")
        );
    }

    #[test]
    fn the_host_and_directories_take_no_fallback() {
        let fx = host();
        let v = view(&fx);
        let (bytes, fallbacks) = v.serve("proc/meminfo", Caller::HOST);
        assert!(bytes.is_ok() && fallbacks.is_empty(), "{fallbacks:?}");
        let (dir, _) = v.serve("proc", Caller::HOST);
        assert_eq!(
            dir.expect_err("a directory").raw_os_error(),
            Some(nix::libc::EISDIR)
        );
        let (missing, _) = v.serve("proc/nope", Caller::HOST);
        assert_eq!(
            missing.expect_err("not in the tree").kind(),
            io::ErrorKind::NotFound
        );
    }
}
