//! The containers that read through every disruption: each runs `probe loop` over the
//! daemon's files until the test writes the stop file, then reports (see [`LoopSummary`]).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use super::container::{BOUND_FILES, Container, LoopSummary, Spec};
use super::scene::{Scene, problems};
use super::{IO_URING_ENV, MIB, kb, processors};

/// How long a probe may take to see the stop file, finish its round and exit.
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// The probe's stop file inside the containers (the barrier directory is `/sync`).
const STOP: &str = "stop";

/// What a container should see in every round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    /// MemTotal, kB.
    pub memtotal_kb: u64,
    /// How many processors cpuinfo lists.
    pub processors: usize,
    /// The online list, without the newline.
    pub online: String,
}

impl Want {
    /// What a container without limits sees: the host's MemTotal, processors and online list.
    pub fn host() -> Want {
        let meminfo = fs::read_to_string("/proc/meminfo").expect("host meminfo");
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").expect("host cpuinfo");
        let online =
            fs::read_to_string("/sys/devices/system/cpu/online").expect("host online list");
        Want {
            memtotal_kb: kb(&meminfo, "MemTotal"),
            processors: processors(&cpuinfo).len(),
            online: online.trim().to_string(),
        }
    }

    /// MemTotal of a memory limit of `bytes`.
    pub fn memory(self, bytes: u64) -> Want {
        Want {
            memtotal_kb: bytes / 1024,
            ..self
        }
    }

    /// The processors and online list of the cpuset `list` (`0`, `1`, `0-1`).
    pub fn cpus(self, list: &str) -> Want {
        let processors = list
            .split(',')
            .map(|r| match r.split_once('-') {
                Some((lo, hi)) => {
                    hi.parse::<usize>().expect("a cpu") + 1 - lo.parse::<usize>().expect("a cpu")
                }
                None => 1,
            })
            .sum();
        Want {
            processors,
            online: list.to_string(),
            ..self
        }
    }
}

/// What the probe does with the `/proc/stat` descriptor it keeps open once a read of it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Keeps re-reading it (as `top` does): a descriptor of a connection that died fails
    /// for good.
    Keep,
    /// Closes it and opens the file again (a tool that reopens on error): what a healed
    /// mount gives fresh opens shows in the kept descriptor's reads too.
    Reopen,
}

/// The script of a reading container: `probe loop` until `/sync/stop` exists, flagging
/// `/sync/$NAME.ready` after its first round (what
/// [`super::container::Barrier::wait_ready`] waits for), reading every 10 ms. `prefix` runs
/// the probe (`unshare -m -p -f` for a reader in namespaces of its own); the shell stays in
/// the container's namespaces, waiting for it.
pub fn loop_script(prefix: &str, kept: Kept) -> String {
    let mode = match kept {
        Kept::Keep => "",
        Kept::Reopen => " reopen",
    };
    // `exit` after the command: busybox sh would exec a last command in place of itself,
    // leaving no process in the container's own mount namespace when `prefix` unshares it.
    format!("{prefix} probe loop /sync/stop \"/sync/$NAME.ready\" 10{mode}\nexit $?\n")
}

/// Containers reading all along, each with what it should see: by default the three of
/// restart.md §8 (one memory-limited, one with a cpuset, one with a user namespace, a
/// read-only root filesystem and `ro,nosuid,nodev` binds), or any set of specs.
pub struct Loads<'s> {
    scene: &'s Scene,
    running: Vec<(Container<'s>, Want)>,
}

impl<'s> Loads<'s> {
    /// The three containers reading every file of [`BOUND_FILES`] under `mnt`; returns once
    /// each has read one round.
    pub fn start(s: &'s Scene, mnt: &Path) -> Loads<'s> {
        Loads::start_binding(s, mnt, BOUND_FILES)
    }

    /// Like [`Loads::start`], binding only `files` from `mnt` (a file left out is the
    /// kernel's own in the containers).
    pub fn start_binding(s: &'s Scene, mnt: &Path, files: &[&str]) -> Loads<'s> {
        let host_meminfo = fs::read_to_string("/proc/meminfo").expect("host meminfo");
        let host_cpuinfo = fs::read_to_string("/proc/cpuinfo").expect("host cpuinfo");
        let host_online =
            fs::read_to_string("/sys/devices/system/cpu/online").expect("host online list");
        let bound = |f: &str| files.contains(&f);
        let want = |mem_kb: Option<u64>, cpus: Option<(&str, usize)>| Want {
            memtotal_kb: match mem_kb {
                Some(kb) if bound("proc/meminfo") => kb,
                _ => kb(&host_meminfo, "MemTotal"),
            },
            processors: match cpus {
                Some((_, n)) if bound("proc/cpuinfo") => n,
                _ => processors(&host_cpuinfo).len(),
            },
            online: match cpus {
                Some((list, _)) if bound("sys/devices/system/cpu/online") => list.to_string(),
                _ => host_online.trim().to_string(),
            },
        };
        let rw = ["rbind", "rw"];
        let script = loop_script("", Kept::Keep);
        let specs = vec![
            (
                Spec::new("mem", &s.rootfs, &script)
                    .memory(256 * MIB)
                    .lxcfs_files(mnt, files, &rw),
                want(Some(262_144), None),
            ),
            (
                Spec::new("cpuset", &s.rootfs, &script)
                    .cpus("1")
                    .lxcfs_files(mnt, files, &rw),
                want(None, Some(("1", 1))),
            ),
            (
                Spec::new("userns", &s.rootfs, &script)
                    .memory(192 * MIB)
                    .cpus("0")
                    .user_namespace(100_000, 65_536)
                    .read_only_root()
                    .lxcfs_files(mnt, files, &["rbind", "ro", "nosuid", "nodev"]),
                want(Some(196_608), Some(("0", 1))),
            ),
        ];
        Loads::start_specs(s, specs)
    }

    /// The containers of `specs` (each given the scene's barrier), each reading with
    /// [`loop_script`]; returns once each has read one round.
    pub fn start_specs(s: &'s Scene, specs: Vec<(Spec, Want)>) -> Loads<'s> {
        let mut running: Vec<(Container<'s>, Want)> = specs
            .into_iter()
            .map(|(spec, want)| (s.runc.start(spec.barrier(&s.barrier)), want))
            .collect();
        s.barrier
            .wait_ready(&mut running.iter_mut().map(|(c, _)| c).collect::<Vec<_>>());
        Loads { scene: s, running }
    }

    /// Adds container `c`, started elsewhere (created, then started later), once it has
    /// read one round.
    pub fn adopt(&mut self, mut c: Container<'s>, want: Want) {
        self.scene.barrier.wait_ready(&mut [&mut c]);
        self.running.push((c, want));
    }

    /// The containers reading, in the order started.
    pub fn containers(&self) -> impl Iterator<Item = &Container<'s>> {
        self.running.iter().map(|(c, _)| c)
    }

    /// Stops the probes (the stop file: a probe that is killed prints no summary) and
    /// returns what each reported, with what it should have seen.
    pub fn stop(self) -> Stopped {
        let barrier = self.scene.barrier.path();
        fs::write(barrier.join(STOP), "").expect("writing the stop file");
        let mut out = Vec::new();
        for (mut c, want) in self.running {
            let report = c.wait(STOP_LIMIT);
            out.push((LoopSummary::parse(&report), want));
        }
        // The next loads of the same scene start afresh.
        for (sum, _) in &out {
            let _ = fs::remove_file(barrier.join(format!("{}.ready", sum.name)));
        }
        let _ = fs::remove_file(barrier.join(STOP));
        Stopped(out)
    }
}

/// What the containers reported once stopped, with what each should have seen.
pub struct Stopped(pub Vec<(LoopSummary, Want)>);

impl Stopped {
    /// The summaries alone.
    pub fn summaries(&self) -> impl Iterator<Item = &LoopSummary> {
        self.0.iter().map(|(s, _)| s)
    }

    /// Prints one line per container: rounds, failed reads by errno, wrong contents, the
    /// longest read and the longest stall; `what` names the disruption.
    pub fn report(&self, what: &str) {
        for s in self.summaries() {
            eprintln!(
                "{what}: container {}: {} rounds, {} failed reads {:?}, {} wrong, longest read \
                 {} ms, longest stall {} ms, kept /proc/stat re-read {} times",
                s.name,
                s.rounds,
                s.failures,
                s.by_errno,
                s.wrong,
                s.max_ms,
                s.max_stall_ms,
                s.kept_reads
            );
        }
        eprintln!(
            "{what}: failed reads by errno {:?}, longest stall {} ms",
            self.failures_by_errno(),
            self.longest_stall_ms()
        );
    }

    /// Failed reads of all containers by errno name.
    pub fn failures_by_errno(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for s in self.summaries() {
            for (e, n) in &s.by_errno {
                *out.entry(e.clone()).or_default() += n;
            }
        }
        out
    }

    /// The longest stall any container saw, in ms.
    pub fn longest_stall_ms(&self) -> u64 {
        self.summaries().map(|s| s.max_stall_ms).max().unwrap_or(0)
    }

    /// Each probe read rounds and saw its own container's view in its first reads: MemTotal
    /// of its memory limit, its cpuset's processors and online list (so it read our files,
    /// not the host's).
    pub fn views(&self) -> Result<(), String> {
        let mut wrong = Vec::new();
        for (s, want) in &self.0 {
            let seen = Want {
                memtotal_kb: s.memtotal_kb.max(0) as u64,
                processors: s.processors.max(0) as usize,
                online: s.online.clone(),
            };
            if s.rounds < 2 || &seen != want {
                wrong.push(format!(
                    "container {}: {} rounds, first saw {seen:?}, expected {want:?}",
                    s.name, s.rounds
                ));
            }
        }
        problems("the probes did not see their containers' views", wrong)
    }

    /// Not one failed read and not one wrong content in any container. Under
    /// `scripts/test --io-uring`, reads that failed with ECANCELED are said and not counted:
    /// the kernel (6.18) ends so, rather than resending, a request it handed to a ring
    /// entry of a worker in the instant that worker died, before the entry could take it
    /// (a loss the daemon cannot prevent; the README says so).
    pub fn no_failures(&self) -> Result<(), String> {
        let cancelled = |s: &LoopSummary| {
            if std::env::var_os(IO_URING_ENV).is_some() {
                s.by_errno.get("E125").copied().unwrap_or(0)
            } else {
                0
            }
        };
        let ended: u64 = self.summaries().map(cancelled).sum();
        if ended > 0 {
            eprintln!(
                "over io_uring: {ended} reads ended ECANCELED by the kernel in a dying \
                 worker's ring, not counted"
            );
        }
        let bad = self
            .summaries()
            .filter(|s| s.failures > cancelled(s) || s.wrong > 0)
            .map(|s| {
                format!(
                    "container {}: {} failed reads {:?} and {} wrong contents of {} rounds; \
                     first events:\n    {}",
                    s.name,
                    s.failures,
                    s.by_errno,
                    s.wrong,
                    s.rounds,
                    s.failure_lines().join("\n    ")
                )
            })
            .collect();
        problems("reads failed in the containers", bad)
    }

    /// Every stall (time between two good rounds, or since the last good one) below `limit`.
    pub fn stalls_below(&self, limit: Duration) -> Result<(), String> {
        let bad = self
            .summaries()
            .filter(|s| u128::from(s.max_stall_ms) >= limit.as_millis())
            .map(|s| format!("container {}: stalled {} ms", s.name, s.max_stall_ms))
            .collect();
        problems(&format!("a container stalled {limit:?} or more"), bad)
    }

    /// The kept-open `/proc/stat` descriptor re-read in every round.
    pub fn kept_descriptor_read_on(&self) -> Result<(), String> {
        let bad = self
            .summaries()
            .filter(|s| s.kept_reads != s.rounds)
            .map(|s| {
                format!(
                    "container {}: the kept /proc/stat read {} times in {} rounds",
                    s.name, s.kept_reads, s.rounds
                )
            })
            .collect();
        problems("the kept-open /proc/stat stopped working", bad)
    }
}
