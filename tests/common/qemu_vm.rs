//! The host side of the test VMs (`scripts/v2vm/vm`, `scripts/sysvm/vm`): prepare the VM with
//! its script, boot it under a timeout, and take apart what its payload sent back on the
//! second serial port (`=== FILE <name> <len>\n<bytes>\n` frames, then `=== END rc=<n>`).
//!
//! A script exits 77 with a line `<name>: unavailable: REASON` when the pieces cannot be had
//! here: the test skips (or fails in CI) with that reason.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{TestDir, skip};

/// One of the test VMs and how to run it.
pub struct VmScript {
    /// Its name, the prefix of its script's messages (`v2vm`, `sysvm`).
    pub name: &'static str,
    /// What it gives, for messages ("the pure cgroup v2 VM").
    pub what: &'static str,
    /// The script, relative to the repository.
    pub script: &'static str,
    /// The environment variable that names another cache directory (one cache for several
    /// checkouts, or an empty one to see the first run).
    pub cache_var: &'static str,
    /// The environment variable that names a directory to copy both serial logs to (the
    /// work directory goes with the test).
    pub keep_var: &'static str,
    /// Fetching and unpacking the pieces the first time, and building the initramfs.
    pub prepare_timeout: Duration,
    /// One boot, the whole payload and power-off.
    pub boot_timeout: Duration,
}

/// The outcome of a boot: outer `Err` a failure, inner `Err` a reason to skip.
pub type Booted<T> = Result<Result<T, String>, String>;

/// The one boot all tests of a file share, kept in `cell` (`boot` runs once): what it gave,
/// or `None` (after [`skip`]) when the pieces cannot be had here. Panics, in every test,
/// when the boot itself failed.
pub fn boot_once<T: Send + Sync>(
    cell: &'static OnceLock<Booted<T>>,
    boot: impl FnOnce() -> Booted<T>,
) -> Option<&'static T> {
    match cell.get_or_init(boot) {
        Ok(Ok(vm)) => Some(vm),
        Ok(Err(skip_reason)) => {
            skip(skip_reason);
            None
        }
        Err(failure) => panic!("{failure}"),
    }
}

/// What a VM's payload sent back: its files by name.
pub type Frames = BTreeMap<String, Vec<u8>>;

/// How long `prepare` and the boot took, for the test's messages.
pub struct VmTimes {
    /// Preparing (cached pieces make it short).
    pub prepare: Duration,
    /// Booting, the payload and power-off.
    pub boot: Duration,
}

impl VmScript {
    fn script(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(self.script)
    }

    /// Prepares and boots the VM with `bin` as the binary under test. Outer `Err`: a
    /// failure; inner `Err`: a reason to skip. Never panics, so that a caller's `OnceLock`
    /// holds the outcome and no test boots a second time.
    pub fn run(&self, bin: &str) -> Booted<(Frames, VmTimes)> {
        if std::env::consts::ARCH != "x86_64" {
            return Ok(Err(format!(
                "the test VM is x86_64 and runs the binary under test, which is {}",
                std::env::consts::ARCH
            )));
        }
        // The kernel, qemu and (for the systemd VM) the root filesystem are kept between
        // runs, in one cache for both VMs (they share the kernel and qemu): the v2vm cache
        // the README names.
        let cache = std::env::var_os(self.cache_var).map_or_else(
            || Path::new(env!("CARGO_TARGET_TMPDIR")).join("v2vm"),
            PathBuf::from,
        );
        let work = TestDir::new();
        let script = self.script();
        let started = Instant::now();

        let mut prepare = Command::new(&script);
        prepare
            .arg("prepare")
            .arg(&cache)
            .arg(bin)
            .arg(work.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that a timeout can stop apt-get and dpkg-deb with it.
            .process_group(0);
        let child = prepare
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let out = wait_output(child, self.prepare_timeout, true).map_err(|stderr| {
            format!(
                "{} prepare did not finish within {:?} (killed it); stderr:\n{stderr}",
                script.display(),
                self.prepare_timeout
            )
        })?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.code() == Some(77) {
            let prefix = format!("{}: unavailable: ", self.name);
            let reason = stderr
                .lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .unwrap_or(stderr.trim());
            return Ok(Err(format!(
                "{} cannot be set up here: {reason}",
                self.what
            )));
        }
        if !out.status.success() {
            return Err(format!(
                "{} prepare failed ({}):\n{stderr}",
                script.display(),
                out.status
            ));
        }
        let prepared = started.elapsed();

        // `vm boot` execs qemu: the child's pid is qemu's.
        let qemu = Command::new(&script)
            .arg("boot")
            .arg(work.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {} boot: {e}", script.display()))?;
        let console = work.join("console.log");
        let tail = |why: String| {
            self.keep_logs(work.path());
            format!(
                "{why}\n--- last lines of the VM's console ({}) ---\n{}",
                console.display(),
                last_lines(&fs::read_to_string(&console).unwrap_or_default(), 60)
            )
        };
        let out = wait_output(qemu, self.boot_timeout, false).map_err(|stderr| {
            tail(format!(
                "the VM did not power off within {:?} (killed qemu); qemu's stderr:\n{stderr}",
                self.boot_timeout
            ))
        })?;
        if !out.status.success() {
            return Err(tail(format!(
                "qemu failed ({}); stderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        self.keep_logs(work.path());
        let payload = fs::read(work.join("payload.log")).unwrap_or_default();
        let frames = parse_frames(&payload).map_err(tail)?;
        let times = VmTimes {
            prepare: prepared,
            boot: started.elapsed() - prepared,
        };
        Ok(Ok((frames, times)))
    }

    /// With the keep variable set to a directory, copies both serial logs there.
    fn keep_logs(&self, work: &Path) {
        if let Some(keep) = std::env::var_os(self.keep_var) {
            let keep = PathBuf::from(keep);
            let _ = fs::create_dir_all(&keep);
            for f in ["console.log", "payload.log"] {
                let _ = fs::copy(work.join(f), keep.join(f));
            }
        }
    }
}

/// Waits for `child`, reading its output; on timeout kills it (its process group when
/// `group`) and returns its stderr so far as the error.
fn wait_output(
    child: Child,
    timeout: Duration,
    group: bool,
) -> Result<std::process::Output, String> {
    let pid = child.id() as i32;
    let waiter = std::thread::spawn(move || child.wait_with_output());
    let end = Instant::now() + timeout;
    while !waiter.is_finished() {
        if Instant::now() > end {
            let target = if group { -pid } else { pid };
            let _ = kill(Pid::from_raw(target), Signal::SIGKILL);
            let out = waiter.join().ok().and_then(Result::ok);
            return Err(out.map_or_else(String::new, |o| {
                String::from_utf8_lossy(&o.stderr).into_owned()
            }));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    waiter
        .join()
        .map_err(|_| "the waiting thread panicked".to_string())?
        .map_err(|e| format!("waiting for the child: {e}"))
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Parses `=== FILE <name> <len>\n<bytes>\n` frames up to `=== END rc=<n>`, which must say 0.
fn parse_frames(bytes: &[u8]) -> Result<Frames, String> {
    let mut files = BTreeMap::new();
    let mut rest = bytes;
    loop {
        let nl = rest.iter().position(|&b| b == b'\n').ok_or_else(|| {
            format!(
                "the payload's output ends without `=== END` after {} files (the VM stopped early?)",
                files.len()
            )
        })?;
        let header = String::from_utf8_lossy(&rest[..nl]).into_owned();
        rest = &rest[nl + 1..];
        if let Some(rc) = header.strip_prefix("=== END rc=") {
            return if rc == "0" {
                Ok(files)
            } else {
                Err(format!("the payload failed: {header}"))
            };
        }
        let mut words = header.split(' ');
        let (Some("==="), Some("FILE"), Some(name), Some(len), None) = (
            words.next(),
            words.next(),
            words.next(),
            words.next(),
            words.next(),
        ) else {
            return Err(format!(
                "unexpected line in the payload's output: {header:?}"
            ));
        };
        let len: usize = len
            .parse()
            .map_err(|e| format!("bad length in {header:?}: {e}"))?;
        if rest.len() < len + 1 || rest[len] != b'\n' {
            return Err(format!(
                "frame {header:?} is cut short or not followed by a newline"
            ));
        }
        files.insert(name.to_string(), rest[..len].to_vec());
        rest = &rest[len + 1..];
    }
}
