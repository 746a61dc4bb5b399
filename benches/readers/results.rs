//! Everything one run of `scripts/bench` measured, as one JSON document: the settings, each
//! phase's targets, every row of every table, the scale and hostile measurements and the
//! goals. The phases of a run are separate processes (the script remounts the daemons
//! between them), so each reads what the earlier ones stored (`--store`) and adds its own;
//! each also rewrites the JSON and the chart, so a run cut short keeps what it measured.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::args::{Args, Target};
use crate::chart;
use crate::goals::Goal;
use crate::hostile::HostileResult;
use crate::report::Row;
use crate::scale::ScaleResult;

/// The whole run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Results {
    /// When the run's first phase started, UTC (`2026-12-03T12:33:07Z`).
    pub started: String,
    /// The machine.
    pub host: Host,
    /// The flags of the first phase (every phase of a run is given the same).
    pub settings: Settings,
    /// The phases, in order.
    pub phases: Vec<Phase>,
    /// Every row of every table: the phases', then the scale mode's (`phase: scaled`).
    pub rows: Vec<Row>,
    /// Scale mode (`--scale N`), if it ran.
    pub scale: Option<ScaleResult>,
    /// The hostile reader, per daemon (empty with `--no-hostile`).
    pub hostile: Vec<HostileResult>,
    /// The goals, each measured or said why not.
    pub goals: Vec<Goal>,
}

/// What the numbers were measured on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Host {
    /// `uname -r`.
    pub kernel: String,
    /// CPUs this process may run on.
    pub cpus: usize,
    /// The C lxcfs's version, when installed.
    pub lxcfs_version: Option<String>,
}

/// The flags that shape the numbers.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Settings {
    /// Files read.
    pub files: Vec<String>,
    /// Reader counts.
    pub readers: Vec<usize>,
    /// Measured window of a run, in seconds.
    pub duration_s: f64,
    /// Warmup before it, in seconds.
    pub warmup_s: f64,
    /// Rounds, of which the median is shown.
    pub rounds: usize,
    /// The readers' cgroup's memory limit, in bytes.
    pub mem_bytes: u64,
    /// Its cpuset.
    pub cpus: String,
    /// Its CFS quota, in CPUs.
    pub quota: f64,
}

/// One phase: the host's io_uring switch and the targets as they were then.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Phase {
    /// `uring-off` or `uring-on`.
    pub name: String,
    /// `/sys/module/fuse/parameters/enable_uring` during the phase (`None`: not in this
    /// kernel).
    pub enable_uring: Option<String>,
    /// The targets.
    pub targets: Vec<TargetInfo>,
}

/// A target as the JSON shows it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TargetInfo {
    /// Its name in the table.
    pub name: String,
    /// What its files are relative to.
    pub root: PathBuf,
    /// The serving process (`None` for the kernel).
    pub pid: Option<i32>,
    /// The size of every file of a target of fixed content (the floor).
    pub fixed: Option<usize>,
    /// `kernel`, `/dev/fuse` or `io_uring`.
    pub transport: String,
    /// How the transport was learnt.
    pub transport_source: String,
}

impl Phase {
    /// The phase `args` run.
    pub fn of(args: &Args) -> Phase {
        Phase {
            name: args.phase.clone(),
            enable_uring: crate::transport::enable_uring(),
            targets: args.targets.iter().map(TargetInfo::of).collect(),
        }
    }
}

impl TargetInfo {
    fn of(t: &Target) -> TargetInfo {
        TargetInfo {
            name: t.name.clone(),
            root: t.root.clone(),
            pid: t.daemon,
            fixed: t.fixed,
            transport: t.transport.clone(),
            transport_source: t.transport_source.clone(),
        }
    }
}

impl Results {
    /// The results of the run's earlier phases (from `--store`, when it exists), or a new
    /// run's.
    pub fn start(args: &Args) -> Result<Results, String> {
        if let Some(store) = args.store.as_deref().filter(|p| p.exists()) {
            let text = fs::read_to_string(store)
                .map_err(|e| format!("reading {}: {e}", store.display()))?;
            return serde_json::from_str(&text)
                .map_err(|e| format!("{}: not the results of a run: {e}", store.display()));
        }
        Ok(Results {
            started: utc_now(),
            host: Host {
                kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                    .map(|t| t.trim().to_string())
                    .unwrap_or_default(),
                cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
                lxcfs_version: lxcfs_version(),
            },
            settings: Settings {
                files: args.files.clone(),
                readers: args.readers.clone(),
                duration_s: args.duration,
                warmup_s: args.warmup,
                rounds: args.rounds,
                mem_bytes: args.mem,
                cpus: args.cpus.clone(),
                quota: args.quota,
            },
            ..Results::default()
        })
    }

    /// Stores the results so far for the run's next phase, if there is a store.
    pub fn save_store(&self, args: &Args) -> Result<(), String> {
        match &args.store {
            Some(path) => write_json(path, self),
            None => Ok(()),
        }
    }

    /// Writes the JSON and draws the chart; returns where they went (the chart's error,
    /// which leaves the JSON written, instead of its path when it could not be drawn).
    pub fn write(&self, args: &Args) -> Result<(PathBuf, Result<PathBuf, String>), String> {
        let json = match &args.json {
            Some(path) => path.clone(),
            None => default_dir().join(format!("bench-{}.json", compact(&self.started))),
        };
        write_json(&json, self)?;
        let png = args
            .png
            .clone()
            .unwrap_or_else(|| json.with_extension("png"));
        let drawn = chart::draw(self, &png).map(|()| png);
        Ok((json, drawn))
    }
}

fn write_json(path: &Path, results: &Results) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(results).expect("results serialize");
    fs::write(path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))
}

/// `<cargo target dir>/bench`: this program runs as `<target dir>/<profile>/deps/readers-…`
/// (whatever `CARGO_TARGET_DIR` says), so the results land beside the builds, out of the
/// source tree.
fn default_dir() -> PathBuf {
    let exe = std::env::current_exe().ok();
    let target = exe
        .as_deref()
        .and_then(|e| e.parent()?.parent()?.parent())
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf);
    target.join("bench")
}

/// Now, UTC, as `2026-12-03T12:33:07Z`.
fn utc_now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `2026-12-03T12:33:07Z` → `20261203T123307Z`, for a file name without colons.
fn compact(stamp: &str) -> String {
    stamp.chars().filter(|c| *c != '-' && *c != ':').collect()
}

/// `lxcfs --version`, when installed.
fn lxcfs_version() -> Option<String> {
    let out = std::process::Command::new("lxcfs")
        .arg("--version")
        .output()
        .ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let v = text.trim().trim_matches('"').to_string();
    (out.status.success() && !v.is_empty()).then_some(v)
}
