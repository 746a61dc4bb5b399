//! What each target must show a reader in the benchmark's cgroup, checked on what readers
//! actually read before (and while) they are timed: a daemon that shows the host's values
//! (it cannot see the reader's cgroup, or the mount is not what it claims) is refused, since
//! timing it would time the wrong work. A daemon that serves fixed content (the floor) has
//! no view to check; its files must be the size it was given, so a broken mount is still
//! refused ([`fixed`]).

use std::fs;

use lxcfs_rs::cpulist;

/// A reader started moments before its first read; a daemon showing it an uptime above
/// this shows someone else's.
const MAX_READER_UPTIME_S: f64 = 60.0;

/// The values a reader must see, from the host and from the cgroup.
#[derive(Clone, Debug)]
pub struct Expected {
    /// The host's MemTotal, in kB: what the kernel shows.
    pub host_mem_kb: u64,
    /// The host's online CPUs: what the kernel shows.
    pub host_cpus: usize,
    /// The cgroup's memory limit, in kB: a daemon's MemTotal.
    pub limit_kb: u64,
    /// How many CPUs a daemon may show: the cpuset's, or fewer under the CPU-quota view
    /// (`--enable-cfs`), which a daemon may or may not have been started with.
    pub daemon_cpus: Vec<usize>,
}

impl Expected {
    /// What readers in a cgroup with a memory limit of `limit` bytes, the CPUs `cpuset` and
    /// a CFS quota of `quota` CPUs must see on this host. Refuses limits a daemon's view
    /// cannot be told apart by (a memory limit at or above the host's memory).
    pub fn new(limit: u64, cpuset: &str, quota: f64) -> Result<Expected, String> {
        let meminfo = read("/proc/meminfo")?;
        let host_mem_kb =
            mem_total_kb(&meminfo).ok_or_else(|| "no MemTotal in /proc/meminfo".to_string())?;
        let online_path = "/sys/devices/system/cpu/online";
        let online =
            cpulist::parse(&read(online_path)?).map_err(|e| format!("{online_path}: {e}"))?;
        let granted = cpulist::parse(cpuset).map_err(|e| format!("the cgroup's cpuset: {e}"))?;
        let visible = granted.iter().filter(|c| online.contains(c)).count().max(1);
        let quota_cpus = (quota.ceil() as usize).clamp(1, visible);
        let limit_kb = limit / 1024;
        if limit_kb >= host_mem_kb {
            return Err(format!(
                "--mem {} kB is not below the host's MemTotal ({host_mem_kb} kB): a daemon's \
                 view could not be told from the host's",
                limit_kb
            ));
        }
        let mut daemon_cpus = vec![visible, quota_cpus];
        daemon_cpus.dedup();
        Ok(Expected {
            host_mem_kb,
            host_cpus: online.len(),
            limit_kb,
            daemon_cpus,
        })
    }

    /// Checks what a reader in the cgroup read from `file` of a target: the kernel's
    /// (`daemon` false) must be the host's, a daemon's must be the cgroup's.
    pub fn check(&self, file: &str, daemon: bool, content: &[u8]) -> Result<(), String> {
        if content.is_empty() {
            return Err(format!("{file} is empty"));
        }
        let text = String::from_utf8_lossy(content);
        let cpus = if daemon {
            self.daemon_cpus.clone()
        } else {
            vec![self.host_cpus]
        };
        match file {
            "proc/meminfo" => {
                let want = if daemon {
                    self.limit_kb
                } else {
                    self.host_mem_kb
                };
                let whose = if daemon {
                    "the cgroup's memory limit"
                } else {
                    "the host's"
                };
                match mem_total_kb(&text) {
                    Some(kb) if kb == want => Ok(()),
                    Some(kb) => Err(format!(
                        "{file}: MemTotal {kb} kB, expected {want} kB ({whose})"
                    )),
                    None => Err(format!(
                        "{file}: no MemTotal line, expected {want} kB ({whose})"
                    )),
                }
            }
            "proc/cpuinfo" => count_cpus(file, &cpus, processor_blocks(&text)),
            "proc/stat" => count_cpus(file, &cpus, cpu_lines(&text)),
            "sys/devices/system/cpu/online" => {
                let n = cpulist::parse(&text)
                    .map_err(|e| format!("{file}: {e}"))?
                    .len();
                count_cpus(file, &cpus, n)
            }
            "proc/uptime" => {
                let up = text
                    .split_whitespace()
                    .next()
                    .and_then(|t| t.parse::<f64>().ok())
                    .ok_or_else(|| format!("{file}: not an uptime: {text:?}"))?;
                if daemon && up > MAX_READER_UPTIME_S {
                    return Err(format!(
                        "{file}: {up} s, expected the age of the reader's pid namespace (under \
                         {MAX_READER_UPTIME_S} s): this is the host's uptime"
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Checks what a reader read from `file` of a target that serves every file as the same
/// `size` bytes (`fixed=BYTES`, the floor).
pub fn fixed(file: &str, size: usize, content: &[u8]) -> Result<(), String> {
    if content.len() == size {
        return Ok(());
    }
    Err(format!(
        "{file}: {} bytes, expected the fixed {size} bytes the target was said to serve",
        content.len()
    ))
}

fn count_cpus(file: &str, allowed: &[usize], got: usize) -> Result<(), String> {
    if allowed.contains(&got) {
        return Ok(());
    }
    Err(format!("{file}: {got} CPUs, expected {}", join(allowed)))
}

fn join(counts: &[usize]) -> String {
    let words: Vec<String> = counts.iter().map(usize::to_string).collect();
    words.join(" or ")
}

/// `MemTotal:  123 kB` → 123.
pub(crate) fn mem_total_kb(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The `processor : N` lines of a cpuinfo.
fn processor_blocks(cpuinfo: &str) -> usize {
    let is_processor = |l: &&str| l.split(':').next().is_some_and(|k| k.trim() == "processor");
    cpuinfo.lines().filter(is_processor).count()
}

/// The `cpuN` lines of a stat file.
fn cpu_lines(stat: &str) -> usize {
    let is_cpu_n = |l: &&str| {
        l.strip_prefix("cpu")
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    };
    stat.lines().filter(is_cpu_n).count()
}

fn read(path: &str) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))
}
