//! The daemon under test (or the C lxcfs) on a temporary mount point, and the temporary
//! directories the tests work in.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::BIN;

/// Set by `scripts/test --io-uring`: every lxcfs-rs daemon the tests start serves over
/// FUSE-over-io_uring (the script turns the kernel's parameter on for the run).
pub const IO_URING_ENV: &str = "LXCFS_RS_TEST_IO_URING";
use super::mounts::fuse_mount_at;
use super::process::{signal, wait_timeout, wait_until};

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
    /// Our daemon with `args` on a fresh temporary mount point, mounted and serving (with
    /// `--io-uring` first when [`IO_URING_ENV`] is set).
    pub fn start(args: &[&str]) -> Daemon {
        Daemon::start_cmd(Command::new(BIN), args)
    }

    /// Our daemon run by `cmd` (the binary under test, with an environment of the caller's
    /// choosing) with `args`, on a fresh temporary mount point, mounted and serving.
    pub fn start_cmd(cmd: Command, args: &[&str]) -> Daemon {
        Daemon::start_named("lxcfs-rs", cmd, args)
    }

    /// A FUSE daemon called `name` (another program than lxcfs-rs when it is not
    /// "lxcfs-rs", e.g. the benchmark's floor), run by `cmd` with `args` then a fresh
    /// temporary mount point, mounted and serving.
    pub fn start_named(name: &'static str, cmd: Command, args: &[&str]) -> Daemon {
        let dir = TestDir::new();
        let mnt = dir.join("mnt");
        fs::create_dir(&mnt).expect("creating the mount point");
        let mut d = Daemon::spawn_cmd(name, cmd, args, &mnt, &dir.join("daemon.log"));
        d._dir = Some(dir);
        d.wait_mounted();
        d
    }

    /// Our daemon with `args` on `mnt` (which the caller owns), mounted and serving.
    pub fn start_on(mnt: &Path, log: &Path, args: &[&str]) -> Daemon {
        Daemon::start_cmd_on(Command::new(BIN), mnt, log, args)
    }

    /// Our daemon run by `cmd` (another build of it, or a wrapper that execs it) with `args`
    /// on `mnt` (which the caller owns), mounted and serving.
    pub fn start_cmd_on(cmd: Command, mnt: &Path, log: &Path, args: &[&str]) -> Daemon {
        let mut d = Daemon::spawn_cmd_on(cmd, mnt, log, args);
        d.wait_mounted();
        d
    }

    /// Like [`Daemon::start_cmd_on`], not waited for: [`Daemon::wait_mounted`] reads the
    /// mount, which blocks for good on a connection that is mounted but nobody serves, so a
    /// caller adopting such a connection first makes sure it is served.
    pub fn spawn_cmd_on(cmd: Command, mnt: &Path, log: &Path, args: &[&str]) -> Daemon {
        Daemon::spawn_cmd("lxcfs-rs", cmd, args, mnt, log)
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
        let mut d = Daemon::start_c_lxcfs_on(&mnt, &dir.join("lxcfs.log"));
        d._dir = Some(dir);
        d
    }

    /// The C lxcfs on `mnt` (which the caller owns, as the log), mounted and serving; its
    /// pidfile is `<log>.pid`.
    pub fn start_c_lxcfs_on(mnt: &Path, log: &Path) -> Daemon {
        let pidfile = log.with_extension("pid");
        let pidfile = pidfile.to_str().expect("utf-8 path").to_string();
        let mut d = Daemon::spawn_cmd(
            "lxcfs",
            Command::new("lxcfs"),
            &["-f", "-l", "--enable-cfs", "-p", &pidfile],
            mnt,
            log,
        );
        // lxcfs takes several seconds to exit after SIGTERM (its background threads sleep).
        d.stop_timeout = Duration::from_secs(15);
        d.wait_mounted();
        d
    }

    fn spawn_cmd(name: &str, mut cmd: Command, args: &[&str], mnt: &Path, log: &Path) -> Daemon {
        // `scripts/test --io-uring`: every lxcfs-rs daemon serves over io_uring.
        if name == "lxcfs-rs"
            && std::env::var_os(IO_URING_ENV).is_some()
            && !args.contains(&"--io-uring")
        {
            cmd.arg("--io-uring");
        }
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
        self.wait_mounted_over(None);
    }

    /// Our daemon with `args` on `mnt`, where a dead mount of connection `dead` is left:
    /// mounted and serving. Until the daemon replaces that mount, nothing here reads below
    /// `mnt`: a lookup in a dead connection fails its dentry's revalidation and unhashes it,
    /// in every bind of that filesystem, and nothing can be mounted below an unhashed dentry.
    pub fn start_replacing(mnt: &Path, log: &Path, args: &[&str], dead: &str) -> Daemon {
        let mut d = Daemon::spawn_cmd_on(Command::new(BIN), mnt, log, args);
        d.wait_mounted_over(Some(dead));
        d
    }

    /// Waits (up to 10 s) until the mount is in mountinfo and `rel` reads: for a daemon
    /// whose failpoints hold every read of `proc/meminfo`.
    pub fn wait_mounted_reading(&mut self, rel: &str) {
        self.wait_mounted_over_reading(None, rel);
    }

    /// [`Daemon::wait_mounted`], reading nothing while the mount at `mnt` is connection
    /// `dead`.
    fn wait_mounted_over(&mut self, dead: Option<&str>) {
        self.wait_mounted_over_reading(dead, "proc/meminfo");
    }

    /// [`Daemon::wait_mounted_over`], reading `rel` to tell that the mount serves.
    fn wait_mounted_over_reading(&mut self, dead: Option<&str>, rel: &str) {
        let meminfo = self.path(rel);
        let mut exited = None;
        let ok = wait_until(Duration::from_secs(10), || {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(Child::try_wait) {
                exited = Some(st);
                return true;
            }
            fuse_mount_at(&self.mnt).is_some_and(|m| Some(m.dev.as_str()) != dead)
                && fs::read(&meminfo).is_ok_and(|b| !b.is_empty())
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

    /// Sends `sig` (SIGTERM through [`Daemon::terminate`]), then asserts that the daemon
    /// exited 0 within 5 s and that its mount is gone.
    #[track_caller]
    pub fn assert_stops_cleanly(&mut self, sig: Signal) {
        let st = if sig == Signal::SIGTERM {
            self.terminate()
        } else {
            signal(self.pid, sig);
            self.wait_exit(Duration::from_secs(5))
        };
        let st =
            st.unwrap_or_else(|| panic!("no exit within 5 s of {sig}; output:\n{}", self.log()));
        assert_eq!(
            st.code(),
            Some(0),
            "exit status after {sig}: expected 0, got {st}; output:\n{}",
            self.log()
        );
        assert!(
            fuse_mount_at(&self.mnt).is_none(),
            "after {sig} the mount must be gone; output:\n{}",
            self.log()
        );
    }

    /// What `lxcfs-rs status --json` says of this daemon's mount, once it answers with a
    /// worker serving (the handoff socket is bound, and the worker started, just after the
    /// mount appears).
    pub fn status(&self) -> serde_json::Value {
        let ask = || {
            Command::new(BIN)
                .args(["status", "--json"])
                .arg(&self.mnt)
                .output()
                .expect("running lxcfs-rs status")
        };
        let mut out = ask();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if out.status.success()
                && serde_json::from_slice::<serde_json::Value>(&out.stdout)
                    .is_ok_and(|v| v["worker_pid"].is_u64())
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            out = ask();
        }
        assert!(
            out.status.success(),
            "lxcfs-rs status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status prints one JSON object")
    }

    /// The pid of the worker serving now (the daemon's own pid is its supervisor's, which
    /// holds the connection but serves nothing).
    pub fn worker_pid(&self) -> u32 {
        let status = self.status();
        status["worker_pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("no worker serves: {status}")) as u32
    }

    /// The process that serves requests: an lxcfs-rs worker, any other daemon itself.
    pub fn serving_pid(&self) -> u32 {
        if self.name == "lxcfs-rs" {
            self.worker_pid()
        } else {
            self.pid
        }
    }

    /// Leaves the mount to whoever serves it now (a successor that took it over): dropping
    /// this daemon no longer detaches it.
    pub fn hand_mount_over(&mut self) {
        self.dev = None;
    }

    /// The `major:minor` of the FUSE connection it mounted.
    pub fn dev(&self) -> Option<&str> {
        self.dev.as_deref()
    }

    /// After this daemon had to be killed: its connection, still there 2 s later, is held by
    /// a process that cannot exit (over io_uring, a worker with a request in one of its ring
    /// entries, see README), and every reader of the mount waits for good, the test's own
    /// included. Aborting it through fusectl fails them, so that the test ends instead of
    /// hanging the suite.
    fn abort_leftover_connection(&self) {
        let Some((major, minor)) = self
            .dev
            .as_deref()
            .and_then(|d| d.split_once(':'))
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
        else {
            return;
        };
        let dir = lxcfs_rs::mounts::fusectl_dir(major, minor);
        if wait_until(Duration::from_secs(2), || !dir.exists()) {
            return;
        }
        eprintln!(
            "the FUSE connection {} of {} outlived its daemon; aborting it",
            dir.display(),
            self.mnt.display()
        );
        let _ = fs::write(dir.join("abort"), "1");
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
            self.abort_leftover_connection();
        }
        // A daemon killed without its clean exit leaves its handoff socket behind.
        if self.dev.is_some() && self.name == "lxcfs-rs" {
            let _ = fs::remove_file(lxcfs_rs::daemon::handoff::socket_path(
                Path::new(lxcfs_rs::host::own::HANDOFF_DIR),
                &self.mnt,
            ));
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
