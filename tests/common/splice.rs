//! sendfile(2) readers: the call itself, the daemon's refusals in its `-d` log, and the proof
//! that busybox `cat` really copies with sendfile.
//!
//! The kernel serves sendfile and splice from a FUSE file through the inode's page cache,
//! which every reader of the inode shares; the daemon refuses those page-cache reads (they
//! come without a lock owner) and logs each refusal with the reader's pid. The splice loops
//! of the suite (here, in the containers and in the v2 VM) read with busybox `cat`: if that
//! busybox copied with read(2) instead, they would silently test read(2) only.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use super::daemon::{Daemon, TestDir};
use super::process::{describe, wait_until};

/// What the daemon logs (with `-d`) when it refuses a page-cache read.
pub const REFUSAL: &str = "refusing page-cache read";

/// `sendfile(2)` of up to `count` bytes from `from`, at its file offset, into `to`.
pub fn sendfile(to: BorrowedFd<'_>, from: BorrowedFd<'_>, count: usize) -> io::Result<usize> {
    // SAFETY: both descriptors are borrowed, so open for the whole call; a null offset makes
    // the kernel use and advance `from`'s own file offset.
    let n = unsafe {
        nix::libc::sendfile(
            to.as_raw_fd(),
            from.as_raw_fd(),
            std::ptr::null_mut(),
            count,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// How many page-cache reads by `pid` (a thread id: the kernel names the calling thread) a
/// `-d` daemon log shows refused.
pub fn refusals_by(log: &str, pid: u32) -> usize {
    let tail = format!(" by pid {pid}");
    log.lines()
        .filter(|l| l.contains(REFUSAL) && l.ends_with(&tail))
        .count()
}

/// Waits (up to 5 s) for the daemon's log to show a refused page-cache read by `pid`, and
/// returns how many it shows. The daemon logs before it answers, so the line is normally
/// there by the time the reader is done; the wait only covers a slow log write.
pub fn wait_refusals(d: &Daemon, pid: u32) -> usize {
    let mut n = 0;
    wait_until(Duration::from_secs(5), || {
        n = refusals_by(&d.log(), pid);
        n > 0
    });
    n
}

/// Busybox binaries already shown to copy with sendfile in this test process.
static PROVEN: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Asserts that `busybox cat` (the binary at `busybox`) copies a mounted file with
/// sendfile(2), into a pipe and into a regular file: the daemon, run with `-d`, logs a
/// refused page-cache read by that very process, and the copy is still the whole file (busybox
/// fell back to read(2) after EINVAL). Checked once per binary per test process; the caller
/// must be able to mount (`require!(mount)`).
pub fn assert_busybox_cat_takes_sendfile(busybox: &Path) {
    let proven = |p: &Path| PROVEN.lock().unwrap_or_else(|e| e.into_inner()).contains(p);
    if proven(busybox) {
        return;
    }
    let d = Daemon::start(&["-d"]);
    let src = d.path("sys/devices/system/cpu/online");
    let want = fs::read(&src).unwrap_or_else(|e| panic!("reading {}: {e}", src.display()));
    let dir = TestDir::new();
    let copy = dir.join("online");
    for into_pipe in [true, false] {
        let target = if into_pipe {
            "a pipe"
        } else {
            "a regular file"
        };
        let stdout = if into_pipe {
            Stdio::piped()
        } else {
            Stdio::from(File::create(&copy).expect("creating the copy"))
        };
        let child = Command::new(busybox)
            .arg("cat")
            .arg(&src)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running {} cat: {e}", busybox.display()));
        let pid = child.id();
        let out = child.wait_with_output().expect("waiting for busybox cat");
        assert!(
            out.status.success(),
            "{} cat into {target}: {}",
            busybox.display(),
            describe(&out)
        );
        let got = if into_pipe {
            out.stdout
        } else {
            fs::read(&copy).expect("reading the copy")
        };
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "{} cat into {target}: the copy must be the file as read(2) reads it",
            busybox.display()
        );
        assert!(
            wait_refusals(&d, pid) > 0,
            "{} cat (pid {pid}) into {target} left no \"{REFUSAL} ... by pid {pid}\" in the \
             daemon's log: it did not copy with sendfile(2), so the splice loops that read with \
             it test read(2) only; log:\n{}",
            busybox.display(),
            d.log()
        );
    }
    PROVEN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(busybox.to_path_buf());
}
