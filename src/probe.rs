//! `lxcfs-rs probe [MOUNTPOINT]`: whether an lxcfs filesystem serves a mount point, for
//! health checks (Docker's `HEALTHCHECK`, a Kubernetes exec probe, a monitoring script).
//!
//! The mount is judged from mountinfo first, without touching it: a FUSE mount whose daemon
//! is alive but wedged blocks whoever looks at it. Only an lxcfs mount is then read
//! (`proc/meminfo`, opened and read to the end), and that read is done by a child process
//! given a deadline: a read the daemon took and never answers leaves its task in
//! uninterruptible sleep, which even SIGKILL cannot end, and a thread so stuck would keep
//! the whole probe process (and the pipes its caller waits on) alive. A child whose
//! standard descriptors point at `/dev/null` can be left behind instead: the probe exits on
//! time, and its caller sees it exit.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::host::own;
use crate::kfile;
use crate::mounts;

/// How long the read of `proc/meminfo` may take before the mount is called wedged.
pub const DEADLINE: Duration = Duration::from_secs(1);

/// The file read to tell that the mount serves: every lxcfs serves it, and it is rendered
/// for the reader (so a worker that cannot render answers with an error, not stale bytes).
const PROBED: &str = "proc/meminfo";

/// Why a mount point is not served.
#[derive(Debug, Error)]
pub enum ProbeError {
    /// Nothing is mounted there.
    #[error("{0}: not mounted (no lxcfs serves it; start lxcfs-rs on it)")]
    NotMounted(PathBuf),
    /// Something other than lxcfs is mounted there.
    #[error("{path}: mounted but not lxcfs (a {fs_type} mount, source {source_name})")]
    NotLxcfs {
        /// The mount point.
        path: PathBuf,
        /// Its filesystem type, from mountinfo.
        fs_type: String,
        /// Its source, from mountinfo.
        source_name: String,
    },
    /// The connection is lost: the daemon that served it is gone.
    #[error(
        "{0}: stale, Transport endpoint is not connected (the daemon that served it is gone; \
         starting lxcfs-rs on it heals it)"
    )]
    Stale(PathBuf),
    /// No answer in time.
    #[error("{path}: too slow, no answer within {limit:?} reading {PROBED} (the daemon is wedged)")]
    TooSlow {
        /// The mount point.
        path: PathBuf,
        /// How long the probe waited.
        limit: Duration,
    },
    /// The read failed otherwise.
    #[error("{path}: read error on {PROBED}")]
    Read {
        /// The mount point.
        path: PathBuf,
        /// What the read got.
        source: io::Error,
    },
    /// The read returned something that is not a meminfo.
    #[error("{path}: read error, {PROBED} has no MemTotal line ({len} bytes read)")]
    NotMeminfo {
        /// The mount point.
        path: PathBuf,
        /// How many bytes came.
        len: usize,
    },
    /// Our mount table could not be read.
    #[error("cannot tell what is mounted")]
    MountInfo(#[source] kfile::FileError),
    /// The reading child could not be started.
    #[error("cannot start the reader of {PROBED}")]
    Reader(#[source] io::Error),
}

/// What a probe that passed saw.
#[derive(Debug)]
pub struct Served {
    /// How long the read of `proc/meminfo` took.
    pub elapsed: Duration,
    /// The version of the lxcfs-rs that answered on the mount point's handoff socket; `None`
    /// when none did (the C lxcfs, or an lxcfs-rs whose socket this process cannot see).
    pub lxcfs_rs: Option<String>,
}

impl Served {
    /// The one line `probe` prints for the mount point `path`.
    pub fn line(&self, path: &Path) -> String {
        let who = match &self.lxcfs_rs {
            Some(v) => format!("lxcfs-rs {v}"),
            None => "no lxcfs-rs answers its handoff socket: the C lxcfs?".to_string(),
        };
        format!(
            "lxcfs-rs probe: {} serves ({who}, {} ms)",
            path.display(),
            self.elapsed.as_millis()
        )
    }
}

/// Probes `mountpoint`: mountinfo must show an lxcfs mount there (`fuse.lxcfs`, or `fuse`
/// with source `lxcfs`), and its `proc/meminfo` must be read completely within `limit`.
pub fn probe(mountpoint: &Path, limit: Duration) -> Result<Served, ProbeError> {
    let path = mounts::absolute(mountpoint);
    let text = kfile::read_text(Path::new(own::MOUNTINFO)).map_err(ProbeError::MountInfo)?;
    let Some(mount) = mounts::topmost_at(&text, &path) else {
        return Err(ProbeError::NotMounted(path));
    };
    if !crate::reattach::scan::is_lxcfs(&mount.fs_type, mount.mount_source.as_deref()) {
        return Err(ProbeError::NotLxcfs {
            path,
            fs_type: mount.fs_type,
            source_name: mount.mount_source.unwrap_or_else(|| "none".into()),
        });
    }
    let started = Instant::now();
    let lost = |e: &std::io::Error| {
        matches!(
            e.raw_os_error(),
            Some(nix::libc::ENOTCONN | nix::libc::ECONNABORTED)
        )
    };
    let mut outcome = read_in_child(&path.join(PROBED), limit).map_err(ProbeError::Reader)?;
    // ECONNABORTED is one request's end when a worker died under `--no-resend`, and every
    // request's while an aborted connection (fusectl, or an io_uring one being torn down)
    // ends: read again to tell.
    if matches!(&outcome, Outcome::Failed(e) if e.raw_os_error() == Some(nix::libc::ECONNABORTED)) {
        outcome = read_in_child(&path.join(PROBED), limit).map_err(ProbeError::Reader)?;
    }
    let data = match outcome {
        Outcome::NoAnswer => return Err(ProbeError::TooSlow { path, limit }),
        Outcome::Failed(e) if lost(&e) => return Err(ProbeError::Stale(path)),
        Outcome::Failed(source) => return Err(ProbeError::Read { path, source }),
        Outcome::Read(data) => data,
    };
    let elapsed = started.elapsed();
    if !data.starts_with(b"MemTotal:") && !data.windows(10).any(|w| w == b"\nMemTotal:") {
        return Err(ProbeError::NotMeminfo {
            path,
            len: data.len(),
        });
    }
    // Asked only once the mount served: the socket never blocks on the mount, and a
    // supervisor answers at once or not at all (its socket is gone).
    let lxcfs_rs = crate::daemon::handoff::ask_status_now(Path::new(own::HANDOFF_DIR), &path)
        .ok()
        .and_then(|s| s["version"].as_str().map(str::to_string));
    Ok(Served { elapsed, lxcfs_rs })
}

/// What the reading child got.
enum Outcome {
    /// The whole file.
    Read(Vec<u8>),
    /// An error from `open` or `read`.
    Failed(io::Error),
    /// Nothing within the deadline.
    NoAnswer,
}

/// Reads `file` in a child process, waiting up to `limit` for the whole file. The child
/// only makes async-signal-safe calls (open, read, write, `_exit`), so this is sound in a
/// process with threads too; it reports the bytes over a pipe and an error as its exit code.
fn read_in_child(file: &Path, limit: Duration) -> io::Result<Outcome> {
    use nix::libc;
    let cpath = CString::new(file.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let (rx, tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: the child runs only async-signal-safe calls on memory prepared before the fork
    // and its own stack, then `_exit`s.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => unsafe {
            // Die with the probe when the read can still be interrupted (not yet taken by
            // the daemon); once taken, nothing ends it but an answer.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // Let go of the caller's stdin, stdout and stderr: a child left stuck must not
            // keep the pipes its caller waits on open.
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            if null >= 0 {
                for fd in 0..3 {
                    libc::dup2(null, fd);
                }
            }
            let fd = libc::open(cpath.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd < 0 {
                libc::_exit(errno_code());
            }
            let out = tx.as_raw_fd();
            let mut buf = [0u8; 4096];
            loop {
                let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                if n == 0 {
                    libc::_exit(0);
                }
                if n < 0 {
                    if *libc::__errno_location() == libc::EINTR {
                        continue;
                    }
                    libc::_exit(errno_code());
                }
                let mut at = 0usize;
                while at < n as usize {
                    let w = libc::write(out, buf[at..].as_ptr().cast(), n as usize - at);
                    if w <= 0 {
                        // The probe is gone or gave up: nobody wants the rest.
                        libc::_exit(libc::EPIPE);
                    }
                    at += w as usize;
                }
            }
        },
        nix::unistd::ForkResult::Parent { child } => {
            drop(tx);
            collect(rx, child, Instant::now() + limit)
        }
    }
}

/// The child's errno as an exit code (errno values fit in one; 0 never comes from a failure).
fn errno_code() -> i32 {
    match io::Error::last_os_error().raw_os_error() {
        Some(e) if (1..=255).contains(&e) => e,
        _ => nix::libc::EIO,
    }
}

/// Reads what the child sends until it closes the pipe (it exited), then its exit code;
/// [`Outcome::NoAnswer`] when `deadline` passes first (the child is left behind).
fn collect(rx: OwnedFd, child: nix::unistd::Pid, deadline: Instant) -> io::Result<Outcome> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::wait::{WaitStatus, waitpid};
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Outcome::NoAnswer);
        }
        let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(rx.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        match nix::unistd::read(&rx, &mut buf) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The pipe closed: the child has exited or is exiting.
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => return Ok(Outcome::Read(data)),
            Ok(WaitStatus::Exited(_, code)) => {
                return Ok(Outcome::Failed(io::Error::from_raw_os_error(code)));
            }
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                return Ok(Outcome::Failed(io::Error::other(format!(
                    "the reader was killed by {sig:?}"
                ))));
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_file_is_read_whole_by_the_child() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("meminfo");
        let text = "MemTotal: 1 kB\n".repeat(1000);
        std::fs::write(&file, &text).unwrap();
        match read_in_child(&file, Duration::from_secs(10)).unwrap() {
            Outcome::Read(data) => assert_eq!(data, text.as_bytes()),
            Outcome::Failed(e) => panic!("read failed: {e}"),
            Outcome::NoAnswer => panic!("no answer"),
        }
    }

    #[test]
    fn a_missing_file_reports_its_errno() {
        let dir = tempfile::tempdir().unwrap();
        match read_in_child(&dir.path().join("none"), Duration::from_secs(10)).unwrap() {
            Outcome::Failed(e) => assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}"),
            _ => panic!("a missing file must fail"),
        }
    }

    #[test]
    fn a_reader_that_never_ends_is_given_up_at_the_deadline() {
        // A FIFO nobody writes to: the child's open blocks for good, as on a wedged mount.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let started = Instant::now();
        let out = read_in_child(&fifo, Duration::from_millis(200)).unwrap();
        assert!(matches!(out, Outcome::NoAnswer));
        assert!(started.elapsed() < Duration::from_secs(5));
        // The child is left in its open; its parent-death signal ends it with this test's
        // thread (a FIFO's open can be interrupted).
    }

    #[test]
    fn nothing_mounted_and_other_mounts_are_told_apart_from_mountinfo() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            probe(dir.path(), DEADLINE),
            Err(ProbeError::NotMounted(_))
        ));
        // `/proc` is always a mount, and never an lxcfs one.
        match probe(Path::new("/proc"), DEADLINE) {
            Err(ProbeError::NotLxcfs { fs_type, .. }) => assert_eq!(fs_type, "proc"),
            other => panic!("/proc: {other:?}"),
        }
    }

    #[test]
    fn collect_reads_until_the_pipe_closes() {
        let (rx, tx) = nix::unistd::pipe().unwrap();
        // SAFETY: a child that writes and exits at once.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => unsafe {
                nix::libc::write(tx.as_raw_fd(), b"MemTotal: 5 kB\n".as_ptr().cast(), 15);
                nix::libc::_exit(0);
            },
            nix::unistd::ForkResult::Parent { child } => {
                drop(tx);
                match collect(rx, child, Instant::now() + Duration::from_secs(10)).unwrap() {
                    Outcome::Read(d) => assert_eq!(d, b"MemTotal: 5 kB\n"),
                    _ => panic!("expected the data"),
                }
            }
        }
    }
}
