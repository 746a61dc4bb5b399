//! Shared harness of the integration tests: environment checks, a daemon on a temporary
//! mount point, cgroup v1 directories with limits, readers running inside those cgroups, and
//! small parsers for the files.
//!
//! Everything the harness creates (mounts, cgroups, processes) is undone by `Drop` guards, so
//! a failing assertion leaves nothing behind. Only processes the tests started are ever
//! signalled, always by pid.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, ErrorKind};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub mod container;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_lxcfs-rs");

/// The v1 controllers a reader is moved into, so that what it reads never depends on where
/// the test runner itself sits.
pub const CONTROLLERS: &[&str] = &["memory", "cpu", "cpuacct", "cpuset", "blkio", "pids"];

/// Every file the daemon generates.
pub const GENERATED: &[&str] = &[
    "proc/cpuinfo",
    "proc/diskstats",
    "proc/loadavg",
    "proc/meminfo",
    "proc/slabinfo",
    "proc/stat",
    "proc/swaps",
    "proc/uptime",
    "proc/pressure/cpu",
    "proc/pressure/io",
    "proc/pressure/memory",
    "sys/devices/system/cpu/online",
    "sys/devices/system/cpu/possible",
    "sys/devices/system/cpu/present",
    "sys/devices/system/cpu/offline",
];

/// The fixed directories of the tree.
pub const DIRS: &[&str] = &[
    "",
    "proc",
    "proc/pressure",
    "sys",
    "sys/devices",
    "sys/devices/system",
    "sys/devices/system/cpu",
];

// ---------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------

/// Whether we run in CI (`CI` set to anything but empty, `0` or `false`), where a missing
/// prerequisite is a failure rather than a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Reports a missing prerequisite: a panic in CI, a "skipping" line elsewhere. Returns
/// `false` so callers can `return` on it.
pub fn skip(reason: &str) -> bool {
    if in_ci() {
        panic!("CI is set, so this test must run, but {reason}");
    }
    eprintln!("skipping: {reason}");
    false
}

/// Whether `prog` is on PATH.
pub fn have_program(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(prog).is_file()))
}

/// Root, /dev/fuse, the v1 cgroup hierarchies the readers need, and util-linux `unshare`.
/// Returns false (after printing why) when the test should be skipped; panics in CI.
pub fn can_mount() -> bool {
    if !nix::unistd::geteuid().is_root() {
        return skip(
            "the test needs root (it mounts FUSE filesystems and creates cgroups); run it as root",
        );
    }
    match fs::metadata("/dev/fuse") {
        Ok(m) if m.file_type().is_char_device() => {}
        Ok(_) => return skip("/dev/fuse is not a character device"),
        Err(e) => return skip(&format!("/dev/fuse is missing ({e}); modprobe fuse")),
    }
    let mounts = v1_mounts();
    for c in CONTROLLERS {
        if !mounts.contains_key(*c) {
            return skip(&format!(
                "no cgroup v1 hierarchy with the {c} controller in /proc/self/mountinfo"
            ));
        }
    }
    for prog in [
        "sh", "cat", "dd", "unshare", "umount", "stat", "ls", "sleep",
    ] {
        if !have_program(prog) {
            return skip(&format!("program {prog} is not installed"));
        }
    }
    true
}

// ---------------------------------------------------------------------------------------
// mountinfo
// ---------------------------------------------------------------------------------------

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone)]
pub struct MountLine {
    /// `major:minor` of the mounted filesystem (unique per FUSE connection).
    pub dev: String,
    pub root: String,
    pub mount_point: PathBuf,
    pub mount_options: String,
    pub fstype: String,
    /// The mount source (what `mount` shows before "on").
    pub source: String,
    pub super_options: String,
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mounts of our mount namespace.
pub fn mountinfo() -> Vec<MountLine> {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("reading /proc/self/mountinfo");
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(MountLine {
                dev: l.get(2)?.to_string(),
                root: unescape(l.get(3)?),
                mount_point: PathBuf::from(unescape(l.get(4)?)),
                mount_options: l.get(5)?.to_string(),
                fstype: r.first()?.to_string(),
                source: r.get(1).unwrap_or(&"").to_string(),
                super_options: r.get(2).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

/// The FUSE mount at exactly `path` (the last one, if stacked).
pub fn fuse_mount_at(path: &Path) -> Option<MountLine> {
    mountinfo()
        .into_iter()
        .rev()
        .find(|m| m.mount_point == path && (m.fstype == "fuse" || m.fstype.starts_with("fuse.")))
}

/// Whether anything is mounted at exactly `path`.
pub fn is_mounted(path: &Path) -> bool {
    mountinfo().iter().any(|m| m.mount_point == path)
}

/// Mount directory of each v1 controller, from mountinfo (fstype `cgroup`, controller names in
/// the super options). Co-mounted controllers map to the same directory.
pub fn v1_mounts() -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for m in mountinfo() {
        if m.fstype != "cgroup" {
            continue;
        }
        for opt in m.super_options.split(',') {
            if CONTROLLERS.contains(&opt) {
                out.entry(opt.to_string())
                    .or_insert_with(|| m.mount_point.clone());
            }
        }
    }
    out
}

/// Removes the cgroup `name` (a top-level directory) and everything below it from every
/// cgroup hierarchy, deepest first: runtimes such as podman (conmon's cgroup) and LXC (its
/// pivot cgroup) leave directories below the parent they were given. Waits a little for
/// cgroups whose last process is still exiting.
pub fn remove_cgroup_tree(name: &str) {
    fn dirs_below(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs_below(&e.path(), out);
                }
            }
        }
        out.push(dir.to_path_buf());
    }
    for m in mountinfo() {
        if m.fstype != "cgroup" && m.fstype != "cgroup2" {
            continue;
        }
        let top = m.mount_point.join(name);
        if !top.exists() {
            continue;
        }
        let mut dirs = Vec::new();
        dirs_below(&top, &mut dirs);
        for d in dirs {
            let gone = wait_until(Duration::from_secs(3), || match fs::remove_dir(&d) {
                Ok(()) => true,
                Err(e) => e.raw_os_error() != Some(nix::libc::EBUSY),
            });
            if !gone {
                eprintln!("warning: could not remove cgroup {} (busy)", d.display());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits up to `timeout` for `child` to exit.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

/// Sends `sig` to a process the tests started.
pub fn signal(pid: u32, sig: Signal) {
    let _ = kill(Pid::from_raw(pid as i32), sig);
}

/// Describes a command's result for failure messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `lxcfs-rs ARGS` run to completion (for error cases and `show`), with a 30 s limit.
pub fn run_bin(args: &[&str]) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));
    let pid = child.id();
    // Read the pipes on a thread so a hung binary is caught by the timeout below.
    let waiter = std::thread::spawn(move || child.wait_with_output());
    let end = Instant::now() + Duration::from_secs(30);
    while !waiter.is_finished() {
        if Instant::now() > end {
            signal(pid, Signal::SIGKILL);
            let out = waiter.join().expect("waiter").expect("wait");
            panic!(
                "lxcfs-rs {args:?} did not finish within 30 s (killed it): {}",
                describe(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    waiter
        .join()
        .expect("waiter thread")
        .expect("waiting for lxcfs-rs")
}

// ---------------------------------------------------------------------------------------
// File parsers
// ---------------------------------------------------------------------------------------

/// The value of `key` in a meminfo-style text (`Key:   123 kB`).
pub fn kb(text: &str, key: &str) -> u64 {
    try_kb(text, key).unwrap_or_else(|| panic!("no numeric {key:?} line in:\n{text}"))
}

/// The value of `key`, if present.
pub fn try_kb(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then(|| v.split_whitespace().next()?.parse().ok())?
    })
}

/// The line of `key` in a meminfo-style text.
pub fn line_of<'a>(text: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}:");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{text}"))
}

/// The keys of a meminfo-style text, in order.
pub fn keys(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_string()))
        .collect()
}

/// The values of the `processor` lines of a cpuinfo text.
pub fn processors(cpuinfo: &str) -> Vec<String> {
    field_values(cpuinfo, "processor")
}

/// The values of every `key : value` line named `key` (cpuinfo style).
pub fn field_values(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim_end() == key)
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

/// The labels (first word) of the `cpu*` lines of a /proc/stat text.
pub fn stat_cpu_labels(stat: &str) -> Vec<String> {
    stat.lines()
        .filter(|l| l.starts_with("cpu"))
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
        .collect()
}

/// The first line of `text` starting with `prefix`.
pub fn line_starting<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

/// Parsed `/proc/loadavg`: `a b c running/total lastpid`, checked against the kernel's format
/// `^\d+\.\d\d \d+\.\d\d \d+\.\d\d \d+/\d+ \d+$`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadAvg {
    pub loads: [f64; 3],
    pub running: u64,
    pub total: u64,
    pub last_pid: u64,
}

/// Parses a loadavg text, or says what is wrong with it.
pub fn parse_loadavg(text: &str) -> Result<LoadAvg, String> {
    let err = |why: &str| format!("loadavg {text:?}: {why}");
    let body = text
        .strip_suffix('\n')
        .ok_or_else(|| err("no final newline"))?;
    if body.contains('\n') {
        return Err(err("more than one line"));
    }
    let fields: Vec<&str> = body.split(' ').collect();
    if fields.len() != 5 {
        return Err(err("not 5 space-separated fields"));
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut loads = [0.0; 3];
    for (i, f) in fields[..3].iter().enumerate() {
        let (int, frac) = f
            .split_once('.')
            .ok_or_else(|| err("a load has no decimal point"))?;
        if !digits(int) || frac.len() != 2 || !digits(frac) {
            return Err(err("a load is not \\d+.\\d\\d"));
        }
        loads[i] = f.parse().map_err(|_| err("a load does not parse"))?;
    }
    let (r, t) = fields[3]
        .split_once('/')
        .ok_or_else(|| err("no running/total"))?;
    if !digits(r) || !digits(t) || !digits(fields[4]) {
        return Err(err("running/total or lastpid not numeric"));
    }
    Ok(LoadAvg {
        loads,
        running: r.parse().map_err(|_| err("running"))?,
        total: t.parse().map_err(|_| err("total"))?,
        last_pid: fields[4].parse().map_err(|_| err("lastpid"))?,
    })
}

/// The two fields of an uptime text.
pub fn parse_uptime(text: &str) -> (f64, f64) {
    let f: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(f.len(), 2, "uptime should have 2 fields, read {text:?}");
    let p = |s: &str| {
        s.parse::<f64>()
            .unwrap_or_else(|e| panic!("uptime field {s:?} of {text:?}: {e}"))
    };
    for s in &f {
        let frac = s.split_once('.').map(|(_, d)| d.len());
        assert_eq!(
            frac,
            Some(2),
            "uptime fields have two decimals as the kernel prints them, read {text:?}"
        );
    }
    (p(f[0]), p(f[1]))
}

/// The `key value` pairs of a cgroup `memory.stat`-style file.
pub fn key_values(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The daemon
// ---------------------------------------------------------------------------------------

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this test process and call.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A temporary directory with a canonical path (mountinfo shows canonical paths).
pub struct TestDir {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl TestDir {
    pub fn new() -> TestDir {
        let dir = tempfile::Builder::new()
            .prefix("lxcfs-rs-test-")
            .tempdir()
            .expect("creating a temp dir");
        let path = dir.path().canonicalize().expect("canonical temp dir");
        TestDir { dir, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<dir>/<rel>`.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }
}

impl Default for TestDir {
    fn default() -> Self {
        TestDir::new()
    }
}

/// A running daemon (ours or the C lxcfs) on a mount point.
pub struct Daemon {
    child: Option<Child>,
    /// The daemon's pid.
    pub pid: u32,
    /// Where it mounts.
    pub mnt: PathBuf,
    /// Its stdout and stderr.
    log: PathBuf,
    /// What it is, for messages.
    name: String,
    /// `major:minor` of the FUSE mount it made, once mounted: whatever is left mounted with
    /// this id after the daemon is gone is ours to detach.
    dev: Option<String>,
    /// How long to wait after SIGTERM before SIGKILL.
    stop_timeout: Duration,
    /// Temp dir holding `mnt` and the log when the daemon owns them (dropped after the
    /// daemon is stopped, as fields drop after `Drop::drop`).
    _dir: Option<TestDir>,
}

impl Daemon {
    /// Our daemon with `args` on a fresh temporary mount point, mounted and serving.
    pub fn start(args: &[&str]) -> Daemon {
        let dir = TestDir::new();
        let mnt = dir.join("mnt");
        fs::create_dir(&mnt).expect("creating the mount point");
        let mut d = Daemon::spawn_cmd(
            "lxcfs-rs",
            Command::new(BIN),
            args,
            &mnt,
            &dir.join("daemon.log"),
        );
        d._dir = Some(dir);
        d.wait_mounted();
        d
    }

    /// Our daemon with `args` on `mnt` (which the caller owns), mounted and serving.
    pub fn start_on(mnt: &Path, log: &Path, args: &[&str]) -> Daemon {
        let mut d = Daemon::spawn_cmd("lxcfs-rs", Command::new(BIN), args, mnt, log);
        d.wait_mounted();
        d
    }

    /// Our daemon with `args` then `mnt`, not waited for (for failing starts).
    pub fn spawn(mnt: &Path, log: &Path, args: &[&str]) -> Daemon {
        Daemon::spawn_cmd("lxcfs-rs", Command::new(BIN), args, mnt, log)
    }

    /// The C lxcfs: `lxcfs -f -l --enable-cfs -p PIDFILE MNT`, mounted and serving.
    pub fn start_c_lxcfs() -> Daemon {
        let dir = TestDir::new();
        let mnt = dir.join("mnt");
        fs::create_dir(&mnt).expect("creating the mount point");
        let pidfile = dir.join("lxcfs.pid");
        let pidfile = pidfile.to_str().expect("utf-8 path").to_string();
        let mut d = Daemon::spawn_cmd(
            "lxcfs",
            Command::new("lxcfs"),
            &["-f", "-l", "--enable-cfs", "-p", &pidfile],
            &mnt,
            &dir.join("lxcfs.log"),
        );
        d._dir = Some(dir);
        // lxcfs takes several seconds to exit after SIGTERM (its background threads sleep).
        d.stop_timeout = Duration::from_secs(15);
        d.wait_mounted();
        d
    }

    fn spawn_cmd(name: &str, mut cmd: Command, args: &[&str], mnt: &Path, log: &Path) -> Daemon {
        let out = File::create(log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let err = out.try_clone().expect("cloning the log handle");
        let child = cmd
            .args(args)
            .arg(mnt)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Daemon {
            pid: child.id(),
            child: Some(child),
            mnt: mnt.to_path_buf(),
            log: log.to_path_buf(),
            name: name.to_string(),
            dev: None,
            stop_timeout: Duration::from_secs(5),
            _dir: None,
        }
    }

    /// Waits (up to 10 s) until the mount is in mountinfo and `proc/meminfo` reads.
    pub fn wait_mounted(&mut self) {
        let meminfo = self.path("proc/meminfo");
        let mut exited = None;
        let ok = wait_until(Duration::from_secs(10), || {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(Child::try_wait) {
                exited = Some(st);
                return true;
            }
            fuse_mount_at(&self.mnt).is_some() && fs::read(&meminfo).is_ok_and(|b| !b.is_empty())
        });
        self.dev = fuse_mount_at(&self.mnt).map(|m| m.dev);
        if let Some(st) = exited {
            self.child = None;
            panic!(
                "{} exited ({st}) instead of mounting {}; its output:\n{}",
                self.name,
                self.mnt.display(),
                self.log()
            );
        }
        assert!(
            ok,
            "{} did not serve {} within 10 s (mounted: {}); its output:\n{}",
            self.name,
            meminfo.display(),
            fuse_mount_at(&self.mnt).is_some(),
            self.log()
        );
    }

    /// `<mnt>/<rel>`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// `<mnt>/<rel>` as a string, for command lines.
    pub fn arg(&self, rel: &str) -> String {
        self.path(rel).to_str().expect("utf-8 path").to_string()
    }

    /// What the daemon wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log)
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()))
    }

    /// Waits up to `timeout` for the daemon to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let st = wait_timeout(child, timeout);
        if st.is_some() {
            self.child = None;
        }
        st
    }

    /// SIGTERM, then waits up to 5 s (15 s for lxcfs); `None` if it did not exit (it is
    /// then SIGKILLed).
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        signal(self.pid, Signal::SIGTERM);
        let st = wait_timeout(child, self.stop_timeout);
        if st.is_none() {
            self.kill9();
        }
        self.child = None;
        st
    }

    /// SIGKILL and reap, leaving any mount behind (stale).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(self.pid, Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() && self.terminate().is_none() {
            eprintln!(
                "{} (pid {}) ignored SIGTERM for {:?}; killed it",
                self.name, self.pid, self.stop_timeout
            );
        }
        // The daemon is gone: a mount at `mnt` with its connection's id is its leftover.
        // (Another daemon's mount on the same point has another id and is left alone.)
        if let Some(dev) = &self.dev {
            if fuse_mount_at(&self.mnt).is_some_and(|m| &m.dev == dev) {
                let _ = Command::new("umount")
                    .arg("-l")
                    .arg(&self.mnt)
                    .stderr(Stdio::null())
                    .status();
            }
            if fuse_mount_at(&self.mnt).is_some_and(|m| &m.dev == dev) {
                eprintln!(
                    "warning: {} is still mounted after stopping {}",
                    self.mnt.display(),
                    self.name
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Cgroups
// ---------------------------------------------------------------------------------------

/// Joins every cgroup listed in `$CG_PROCS`, then execs the command.
const JOIN: &str = r#"for p in $CG_PROCS; do echo $$ > "$p" || exit 97; done; exec "$@""#;

/// A cgroup with the same relative path in each v1 hierarchy of [`CONTROLLERS`].
pub struct Cgroup {
    /// Directory per controller (co-mounted controllers share one).
    dirs: BTreeMap<String, PathBuf>,
    /// Processes started in it, killed and reaped on drop.
    started: Mutex<Vec<Child>>,
}

fn write_file(path: &Path, value: &str) {
    fs::write(path, value)
        .unwrap_or_else(|e| panic!("writing {value:?} to {}: {e}", path.display()));
}

fn read_trim(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_string()
}

impl Cgroup {
    /// A new top-level cgroup `lxcfs-rs-test-<pid>-<n>` in every controller, no limits,
    /// cpuset = the root's cpus and mems.
    pub fn new() -> Cgroup {
        let mounts = v1_mounts();
        let name = unique("lxcfs-rs-test");
        let mut dirs = BTreeMap::new();
        for c in CONTROLLERS {
            let mount = mounts
                .get(*c)
                .unwrap_or_else(|| panic!("no v1 {c} hierarchy mounted"));
            dirs.insert(c.to_string(), mount.join(&name));
        }
        Cgroup::create(dirs)
    }

    /// A child cgroup `name` below this one (declare it after the parent, so it is dropped
    /// first; the parent's drop also removes leftovers).
    pub fn child(&self, name: &str) -> Cgroup {
        let dirs = self
            .dirs
            .iter()
            .map(|(c, d)| (c.clone(), d.join(name)))
            .collect();
        Cgroup::create(dirs)
    }

    fn create(dirs: BTreeMap<String, PathBuf>) -> Cgroup {
        let cg = Cgroup {
            dirs,
            started: Mutex::new(Vec::new()),
        };
        for dir in cg.unique_dirs() {
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => panic!("creating cgroup {}: {e}", dir.display()),
            }
        }
        // A v1 cpuset cgroup takes no task until it has cpus and mems: inherit the parent's.
        let cs = cg.dir("cpuset").to_path_buf();
        let parent = cs.parent().expect("cpuset parent");
        write_file(
            &cs.join("cpuset.mems"),
            &read_trim(&parent.join("cpuset.mems")),
        );
        write_file(
            &cs.join("cpuset.cpus"),
            &read_trim(&parent.join("cpuset.cpus")),
        );
        cg
    }

    fn unique_dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.dirs.values().cloned().collect();
        v.sort();
        v.dedup();
        v
    }

    /// The directory of `controller`.
    pub fn dir(&self, controller: &str) -> &Path {
        self.dirs
            .get(controller)
            .unwrap_or_else(|| panic!("no {controller} dir"))
    }

    /// Sets `memory.limit_in_bytes`.
    pub fn set_memory_limit(&self, bytes: u64) -> &Self {
        write_file(
            &self.dir("memory").join("memory.limit_in_bytes"),
            &bytes.to_string(),
        );
        self
    }

    /// Sets `cpuset.cpus` (mems were copied from the parent at creation).
    pub fn set_cpus(&self, cpus: &str) -> &Self {
        write_file(&self.dir("cpuset").join("cpuset.cpus"), cpus);
        self
    }

    /// Sets `cpu.cfs_period_us` and `cpu.cfs_quota_us`.
    pub fn set_quota(&self, quota: i64, period: u64) -> &Self {
        let d = self.dir("cpu");
        write_file(&d.join("cpu.cfs_period_us"), &period.to_string());
        write_file(&d.join("cpu.cfs_quota_us"), &quota.to_string());
        self
    }

    /// Reads a file of this cgroup's `controller` directory.
    pub fn read_file(&self, controller: &str, name: &str) -> String {
        let p = self.dir(controller).join(name);
        fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
    }

    /// The `cgroup.procs` files, space separated, for [`JOIN`].
    pub fn procs_files(&self) -> String {
        self.unique_dirs()
            .iter()
            .map(|d| d.join("cgroup.procs").to_str().expect("utf-8").to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A command that joins this cgroup in every controller, then execs `argv`.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", JOIN, "sh"])
            .args(argv)
            .env("CG_PROCS", self.procs_files())
            .stdin(Stdio::null());
        cmd
    }

    /// A command that joins this cgroup, then runs `argv` as the init of a new pid namespace
    /// (with its own /proc), as a container would.
    pub fn command_in_pidns(&self, argv: &[&str]) -> Command {
        let mut full = vec!["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"];
        full.extend_from_slice(argv);
        self.command(&full)
    }

    /// Runs `argv` in the cgroup; panics (with its output) unless it exits 0.
    pub fn run(&self, argv: &[&str]) -> String {
        checked(self.command(argv), argv)
    }

    /// Runs `argv` in the cgroup as init of a new pid namespace; panics unless it exits 0.
    pub fn run_in_pidns(&self, argv: &[&str]) -> String {
        checked(self.command_in_pidns(argv), argv)
    }

    /// What a reader in this cgroup reads from `path` (`cat`, so read(2)).
    pub fn read(&self, path: &Path) -> String {
        self.run(&["cat", path.to_str().expect("utf-8 path")])
    }

    /// Starts `argv` in the cgroup in the background, waits until it has joined (its pid is
    /// in the memory hierarchy's `cgroup.procs`) and returns its pid. Killed on drop.
    pub fn spawn(&self, argv: &[&str]) -> u32 {
        let child = self
            .command(argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {argv:?}: {e}"));
        let pid = child.id();
        self.started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
        let procs = self.dir("memory").join("cgroup.procs");
        let pids = self.unique_dirs();
        let joined = wait_until(Duration::from_secs(5), || {
            pids.iter().all(|d| {
                fs::read_to_string(d.join("cgroup.procs"))
                    .is_ok_and(|t| t.lines().any(|l| l.trim() == pid.to_string()))
            })
        });
        assert!(
            joined,
            "{argv:?} (pid {pid}) did not join the cgroup within 5 s ({})",
            procs.display()
        );
        pid
    }

    /// Pids in this cgroup (memory hierarchy), for cleanup.
    fn member_pids(dir: &Path) -> Vec<i32> {
        fs::read_to_string(dir.join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Every directory of the subtree below `dir`, deepest first.
    fn subtree(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    Cgroup::subtree(&e.path(), out);
                }
            }
        }
        out.push(dir.to_path_buf());
    }
}

impl Default for Cgroup {
    fn default() -> Self {
        Cgroup::new()
    }
}

/// Runs `cmd` to completion, panicking with its output unless it exits 0.
pub fn checked(mut cmd: Command, what: &[&str]) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {what:?}: {e}"));
    if out.status.code() == Some(97) {
        panic!(
            "{what:?}: could not join the test cgroup: {}",
            describe(&out)
        );
    }
    assert!(out.status.success(), "{what:?} failed: {}", describe(&out));
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{what:?} printed non-UTF-8: {e}"))
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let mut started =
            std::mem::take(&mut *self.started.lock().unwrap_or_else(|e| e.into_inner()));
        for child in &mut started {
            signal(child.id(), Signal::SIGKILL);
            let _ = child.wait();
        }
        let mut dirs = Vec::new();
        for d in self.unique_dirs() {
            Cgroup::subtree(&d, &mut dirs);
        }
        // Only our own tests put processes in these uniquely named cgroups; anything still
        // there is a descendant of a process we started (e.g. the init of an unshared pid
        // namespace): kill it by pid so the directories can go.
        for d in &dirs {
            for pid in Cgroup::member_pids(d) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        for d in &dirs {
            let ok = wait_until(Duration::from_secs(3), || match fs::remove_dir(d) {
                Ok(()) => true,
                Err(e) if e.kind() == ErrorKind::NotFound => true,
                Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => false,
                Err(_) => true,
            });
            if !ok {
                eprintln!(
                    "warning: could not remove cgroup {} (still busy)",
                    d.display()
                );
            }
        }
    }
}

/// Reads a file ignoring errors (for messages).
pub fn read_or_err(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| format!("(error reading {}: {e})", path.display()))
}

/// The OS error of an io result, for assertions.
pub fn errno_of<T>(r: &io::Result<T>) -> Option<i32> {
    r.as_ref().err().and_then(io::Error::raw_os_error)
}
