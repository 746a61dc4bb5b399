//! The readers' cgroup: a directory of the same name in each v1 hierarchy a daemon reads a
//! reader's limits from, holding the benchmark's memory limit, cpuset and CFS quota. Created
//! for one benchmark and removed (with any reader left in it) when dropped.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The controllers whose files the daemons read for a reader: a reader joins a fresh cgroup
/// in each, so that nothing it reads depends on where the benchmark itself runs.
const CONTROLLERS: [&str; 6] = ["memory", "cpu", "cpuacct", "cpuset", "blkio", "pids"];

/// The controllers the limits live in; without them the benchmark has nothing to show.
const REQUIRED: [&str; 3] = ["memory", "cpu", "cpuset"];

/// The CFS period the quota is written against (the kernel's default).
const PERIOD_US: u64 = 100_000;

/// A memory limit that limits nothing (the kernel keeps it as its own "no limit"), for the
/// cgroups that are not a reader's view: the scale mode's parent, the hostile reader's.
pub const UNLIMITED: u64 = i64::MAX as u64;

/// What the readers' cgroup allows.
#[derive(Clone, Debug)]
pub struct Limits {
    /// `memory.limit_in_bytes`.
    pub mem: u64,
    /// `cpuset.cpus`.
    pub cpus: String,
    /// The CFS quota in CPUs.
    pub quota: f64,
}

/// The cgroup the readers join; its directories are removed on drop.
pub struct BenchCgroup {
    /// Every directory we created, one per hierarchy (co-mounted controllers share one).
    dirs: Vec<PathBuf>,
    /// The directory of each controller.
    by_controller: BTreeMap<&'static str, PathBuf>,
}

impl BenchCgroup {
    /// Creates `name` at the top of each v1 hierarchy of [`CONTROLLERS`] and sets `limits`.
    pub fn create(name: &str, limits: &Limits) -> Result<BenchCgroup, String> {
        let hierarchies = v1_hierarchies()?;
        if let Some(missing) = REQUIRED.iter().find(|c| !hierarchies.contains_key(*c)) {
            return Err(format!(
                "no cgroup v1 hierarchy with the {missing} controller is mounted; the readers' \
                 cgroup needs v1 memory, cpu and cpuset hierarchies"
            ));
        }
        let mut cg = BenchCgroup {
            dirs: Vec::new(),
            by_controller: BTreeMap::new(),
        };
        for (controller, mount) in hierarchies {
            let dir = mount.join(name);
            if !cg.dirs.contains(&dir) {
                fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
                cg.dirs.push(dir.clone());
            }
            cg.by_controller.insert(controller, dir);
        }
        cg.set_limits(limits)?;
        Ok(cg)
    }

    fn set_limits(&self, limits: &Limits) -> Result<(), String> {
        // A v1 cpuset takes no task before it has CPUs and memory nodes.
        let cpuset = &self.by_controller["cpuset"];
        let parent = cpuset.parent().unwrap_or(Path::new("/"));
        write(
            &cpuset.join("cpuset.mems"),
            &read(&parent.join("cpuset.mems"))?,
        )?;
        write(&cpuset.join("cpuset.cpus"), &limits.cpus)?;
        let memory = &self.by_controller["memory"];
        write(
            &memory.join("memory.limit_in_bytes"),
            &limits.mem.to_string(),
        )?;
        let cpu = &self.by_controller["cpu"];
        let quota_us = (limits.quota * PERIOD_US as f64).round().max(1000.0) as u64;
        write(&cpu.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
        write(&cpu.join("cpu.cfs_quota_us"), &quota_us.to_string())
    }

    /// The `cgroup.procs` files a reader writes its pid to, one per hierarchy.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// The memory limit as the kernel keeps it (rounded down to whole pages), in bytes.
    pub fn memory_limit(&self) -> Result<u64, String> {
        let path = self.by_controller["memory"].join("memory.limit_in_bytes");
        let text = read(&path)?;
        text.parse()
            .map_err(|_| format!("{}: not a number: {text:?}", path.display()))
    }

    /// How many threads the cgroup holds (the cpu hierarchy's `tasks`).
    pub fn tasks(&self) -> Result<usize, String> {
        Ok(read(&self.by_controller["cpu"].join("tasks"))?
            .lines()
            .count())
    }

    /// The CPUs the cgroup's cpuset grants, as the kernel reports them.
    pub fn cpus(&self) -> Result<String, String> {
        read(&self.by_controller["cpuset"].join("cpuset.cpus"))
    }

    /// SIGKILLs every process in the cgroup: only our readers ever join it (its name is ours),
    /// so this is how readers stuck on a hung mount are stopped.
    pub fn kill_members(&self) {
        for procs in self.procs_files() {
            let Ok(text) = fs::read_to_string(&procs) else {
                continue;
            };
            for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

impl Drop for BenchCgroup {
    fn drop(&mut self) {
        self.kill_members();
        for dir in &self.dirs {
            // Killed readers leave the cgroup only once they have exited: retry for a while.
            let end = Instant::now() + Duration::from_secs(5);
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    Err(e) if Instant::now() >= end => {
                        eprintln!("bench: warning: cannot remove {}: {e}", dir.display());
                        break;
                    }
                    Err(_) => sleep(Duration::from_millis(50)),
                }
            }
        }
    }
}

/// Limits that hold nothing back: no memory limit, every online CPU, a quota of all of them.
pub fn unlimited() -> Result<Limits, String> {
    let online = read(Path::new("/sys/devices/system/cpu/online"))?;
    let n = lxcfs_rs::cpulist::parse(&online)
        .map_err(|e| format!("/sys/devices/system/cpu/online: {e}"))?
        .len();
    Ok(Limits {
        mem: UNLIMITED,
        cpus: online,
        quota: n.max(1) as f64,
    })
}

/// The mount point of each v1 controller of [`CONTROLLERS`] that is mounted.
fn v1_hierarchies() -> Result<BTreeMap<&'static str, PathBuf>, String> {
    let text = fs::read_to_string(lxcfs_rs::host::own::MOUNTINFO)
        .map_err(|e| format!("reading {}: {e}", lxcfs_rs::host::own::MOUNTINFO))?;
    let mut out = BTreeMap::new();
    for m in lxcfs_rs::mounts::parse_mounts(&text).filter(|m| m.fs_type == "cgroup") {
        for c in CONTROLLERS {
            if m.super_options.contains_key(c) {
                out.entry(c).or_insert_with(|| m.mount_point.clone());
            }
        }
    }
    Ok(out)
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path)
        .map(|t| t.trim().to_string())
        .map_err(|e| format!("reading {}: {e}", path.display()))
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("writing {value:?} to {}: {e}", path.display()))
}
