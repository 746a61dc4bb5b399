//! The benchmark's flags, and the targets they name.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

/// `cargo bench --bench readers -- ARGS`. The defaults are what `scripts/bench` runs.
#[derive(Parser, Debug)]
#[command(
    name = "readers",
    bin_name = "scripts/bench",
    about = "Read throughput and latency of /proc files served by the kernel, lxcfs, \
             lxcfs-rs and the floor (fixed files on lxcfs-rs's FUSE session layer), side by \
             side, from readers in a limited cgroup and their own pid namespaces. \
             scripts/bench mounts the daemons and passes the targets; other flags given to it \
             come here"
)]
pub struct Args {
    /// A target: NAME=ROOT[,pid=PID][,fixed=BYTES]. ROOT=/ is the kernel's own /proc and
    /// /sys; any other ROOT is a mount served by the daemon PID (whose CPU time and RSS are
    /// reported), which must show the cgroup's limits. fixed=BYTES marks a daemon that serves
    /// every file as the same BYTES bytes (the floor, examples/floor.rs: fixed=1400), checked
    /// by that size instead. transport=/dev/fuse|io_uring names how requests reach a daemon
    /// (as `lxcfs-rs status --json` reports it); without it, a daemon holding an io_uring
    /// descriptor is taken to serve over io_uring. The first target that is a daemon is the
    /// baseline of the ratios.
    #[arg(short = 'T', long = "target", required = true, value_parser = Target::parse)]
    pub targets: Vec<Target>,
    /// Files to read, relative to each target's ROOT (comma-separated).
    #[arg(
        short,
        long,
        value_delimiter = ',',
        default_value = "proc/meminfo,proc/cpuinfo,proc/stat,proc/uptime,sys/devices/system/cpu/online"
    )]
    pub files: Vec<String>,
    /// Numbers of concurrent readers, each measured in turn (comma-separated).
    #[arg(short = 'n', long, value_delimiter = ',', default_value = "1,8")]
    pub readers: Vec<usize>,
    /// Seconds of the measured window of each run.
    #[arg(short, long, default_value_t = 3.0)]
    pub duration: f64,
    /// Seconds the readers read before the measured window starts (not counted).
    #[arg(short, long, default_value_t = 0.5)]
    pub warmup: f64,
    /// Runs of each file and reader count, targets taking turns; the median is reported.
    #[arg(short, long, default_value_t = 3)]
    pub rounds: usize,
    /// Memory limit of the readers' cgroup (bytes, or with a K, M or G suffix); it must be
    /// below the host's MemTotal, so that a daemon's view can be told from the host's.
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    pub mem: u64,
    /// cpuset of the readers' cgroup, in the kernel's CPU list format.
    #[arg(long, default_value = "0")]
    pub cpus: String,
    /// CFS quota of the readers' cgroup, in CPUs (over a 100 ms period).
    #[arg(long, default_value_t = 0.5)]
    pub quota: f64,
    /// Sleeping threads held in the readers' cgroup for the whole benchmark (one process),
    /// as a container's idle threads: what `proc/stat`'s `procs_running` and `loadavg` count.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Where the results go as JSON: every row, the scale and hostile measurements and the
    /// goals (default: <cargo target dir>/bench/bench-<UTC start>.json).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Where the chart of reads/s per configuration goes (default: beside the JSON, as .png).
    #[arg(long, value_name = "PATH")]
    pub png: Option<PathBuf>,
    /// Scale mode: after the table, create N cgroups, each with a live task and limits of its
    /// own; read every file once through each daemon from a reader in each of them (the
    /// daemons' RSS after), then measure the daemons again (cost per read with N cgroups
    /// against the table's, without). 0: off.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub scale: usize,
    /// Skip the hostile reader: one process in a cgroup of its own holding --hostile-fds
    /// descriptors of proc/cpuinfo on each daemon, 1 byte read from each.
    #[arg(long)]
    pub no_hostile: bool,
    /// How many descriptors the hostile reader holds.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub hostile_fds: usize,
    /// scripts/bench: skip the phase with FUSE-over-io_uring enabled (enable_uring=1). The
    /// script acts on it; here it only means the run has one phase.
    #[arg(long)]
    pub no_uring: bool,
    /// The phase these rows belong to (scripts/bench: uring-off, then uring-on). The scale
    /// and hostile measurements run in a run's first phase only.
    #[arg(long, hide = true, default_value = "uring-off")]
    pub phase: String,
    /// The results of the run's earlier phases, read if present and rewritten with this
    /// phase's (scripts/bench passes one file to every phase of a run).
    #[arg(long, hide = true, value_name = "PATH")]
    pub store: Option<PathBuf>,
    /// A later phase follows: the goals table waits for it.
    #[arg(long, hide = true)]
    pub more: bool,
    /// Set by `cargo bench`; without it the program runs its smoke test instead.
    #[arg(long, hide = true)]
    pub bench: bool,
}

impl Args {
    /// The flags' values that clap cannot check by itself, checked once before anything is
    /// created.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.duration > 0.0 && self.duration.is_finite()) {
            return Err(format!("-d {}: the window must be positive", self.duration));
        }
        if !(self.warmup >= 0.0 && self.warmup.is_finite()) {
            return Err(format!("-w {}: the warmup cannot be negative", self.warmup));
        }
        if self.rounds == 0 {
            return Err("-r 0: at least one round".into());
        }
        if self.readers.contains(&0) {
            return Err("-n: every reader count must be at least 1".into());
        }
        if !(self.quota > 0.0 && self.quota.is_finite()) {
            return Err(format!(
                "--quota {}: must be a positive number of CPUs",
                self.quota
            ));
        }
        if self.hostile_fds == 0 {
            return Err("--hostile-fds 0: use --no-hostile".into());
        }
        if self
            .files
            .iter()
            .any(|f| f.is_empty() || Path::new(f).is_absolute())
        {
            return Err(format!(
                "-f {:?}: files are relative to each target's ROOT",
                self.files
            ));
        }
        Ok(())
    }

    /// The warmup.
    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup)
    }

    /// The measured window.
    pub fn window(&self) -> Duration {
        Duration::from_secs_f64(self.duration)
    }
}

/// One thing to read from: the kernel, or a daemon's mount.
#[derive(Clone, Debug)]
pub struct Target {
    /// Its name in the table.
    pub name: String,
    /// The directory the files are relative to.
    pub root: PathBuf,
    /// The daemon serving `root`; `None` for the kernel.
    pub daemon: Option<i32>,
    /// The size of every file of a daemon that serves fixed content rather than a view of
    /// the cgroup (the floor): what its files are checked by.
    pub fixed: Option<usize>,
    /// How requests reach the daemon: `kernel` for the kernel, else `/dev/fuse` or
    /// `io_uring`, as given (`transport=`) or seen ([`crate::transport`]).
    pub transport: String,
    /// Where [`Target::transport`] comes from, for the header.
    pub transport_source: String,
}

impl Target {
    /// `NAME=ROOT[,pid=PID][,fixed=BYTES][,transport=T]`: a pid is required for anything but
    /// the kernel (`ROOT` = `/`), since a daemon's CPU time is half of what is measured, and
    /// must be a live process; `fixed` and `transport` only for a daemon. Without
    /// `transport`, a daemon's is seen from its descriptors.
    pub fn parse(spec: &str) -> Result<Target, String> {
        let usage = "NAME=ROOT[,pid=PID][,fixed=BYTES][,transport=/dev/fuse|io_uring]";
        let (name, rest) = spec
            .split_once('=')
            .filter(|(n, r)| !n.is_empty() && !r.is_empty())
            .ok_or_else(|| format!("{spec:?}: expected {usage}"))?;
        let mut parts = rest.split(',');
        let root = PathBuf::from(parts.next().unwrap_or_default());
        let (mut daemon, mut fixed, mut transport) = (None, None, None);
        for opt in parts {
            let bad =
                || format!("{spec:?}: unknown or malformed option {opt:?} (expected {usage})");
            let (key, value) = opt.split_once('=').ok_or_else(bad)?;
            if key == "transport" {
                let known = crate::transport::KNOWN.contains(&value);
                transport = Some(known.then(|| value.to_string()).ok_or_else(bad)?);
                continue;
            }
            let n = value
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(bad)?;
            match key {
                "pid" => daemon = Some(i32::try_from(n).map_err(|_| bad())?),
                "fixed" => fixed = Some(n as usize),
                _ => return Err(bad()),
            }
        }
        let canonical =
            fs::canonicalize(&root).map_err(|e| format!("{spec:?}: {}: {e}", root.display()))?;
        let kernel = canonical == Path::new("/");
        match (kernel, daemon) {
            (true, Some(_)) => Err(format!("{spec:?}: the kernel (ROOT=/) has no daemon pid")),
            (true, None) if fixed.is_some() || transport.is_some() => Err(format!(
                "{spec:?}: the kernel (ROOT=/) serves no fixed content and has no transport"
            )),
            (false, None) => Err(format!(
                "{spec:?}: give the pid of the daemon serving {} (NAME=ROOT,pid=PID)",
                root.display()
            )),
            (false, Some(pid)) if !Path::new(&format!("/proc/{pid}")).exists() => {
                Err(format!("{spec:?}: no process {pid}"))
            }
            _ => {
                let (transport, transport_source) = match (daemon, transport) {
                    (None, _) => ("kernel".to_string(), "no daemon".to_string()),
                    (Some(_), Some(t)) => (t, "as given".to_string()),
                    (Some(pid), None) => crate::transport::seen(pid),
                };
                Ok(Target {
                    name: name.to_string(),
                    root: canonical,
                    daemon,
                    fixed,
                    transport,
                    transport_source,
                })
            }
        }
    }

    /// `<root>/<file>`.
    pub fn path(&self, file: &str) -> PathBuf {
        self.root.join(file)
    }
}

/// `256M`, `1G`, `4096K` or a plain number of bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 10),
        Some((i, 'M' | 'm')) => (&t[..i], 20),
        Some((i, 'G' | 'g')) => (&t[..i], 30),
        _ => (t, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?}: expected a size such as 256M"))
}
