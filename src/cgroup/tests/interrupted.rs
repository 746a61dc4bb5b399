//! A read that fails midway: interrupted by a signal it is retried, failing for good it is
//! not.
//!
//! The daemon installs no signal handler of its own, but the library's callers may (with
//! `SA_RESTART` unset, a blocking `read` then fails with `EINTR`), and a `/proc/<pid>/cgroup`
//! read that gave up would show the reader host values. The file here is a FIFO, so the read
//! blocks for as long as the test needs to interrupt it. Any other error must end the read at
//! once, with the host value standing in.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::stat::Mode;
use nix::unistd::{gettid, mkfifo};

use super::{Fixture, cgroups_of};
use crate::cgroup::Hierarchies;

/// Signals handled so far: the handler's only effect.
static HANDLED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_signal(_: nix::libc::c_int) {
    HANDLED.fetch_add(1, Ordering::SeqCst);
}

/// The handler for `SIGUSR2`, installed without `SA_RESTART`, so that the kernel does not
/// restart the interrupted read itself; the previous one is put back on drop.
struct NoRestartHandler(SigAction);

impl NoRestartHandler {
    fn install() -> Self {
        let action = SigAction::new(
            SigHandler::Handler(count_signal),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler only touches an atomic, which is async-signal-safe.
        let old = unsafe { sigaction(Signal::SIGUSR2, &action) }.expect("installing a handler");
        NoRestartHandler(old)
    }
}

impl Drop for NoRestartHandler {
    fn drop(&mut self) {
        // SAFETY: puts back the action that was in place before.
        let _ = unsafe { sigaction(Signal::SIGUSR2, &self.0) };
    }
}

/// Polls `done` every millisecond until it holds, failing the test after 30 s.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_signal_during_a_read_does_not_lose_the_file() {
    let fx = Fixture::new();
    fx.mountinfo("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
    std::fs::create_dir_all(fx.path("proc/5")).unwrap();
    let fifo = fx.path("proc/5/cgroup");
    mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
    let h = Hierarchies::discover(&fx.host).unwrap();
    let _handler = NoRestartHandler::install();

    let (tid_tx, tid_rx) = mpsc::channel();
    let host = fx.host.clone();
    let reader = std::thread::spawn(move || {
        tid_tx.send(gettid()).unwrap();
        h.of_pid(&host, 5)
    });
    let tid = tid_rx.recv().unwrap();

    // Opening the write end succeeds once the reader has opened the FIFO.
    let mut writer = None;
    wait_for("the reader to open the FIFO", || {
        writer = OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&fifo)
            .ok();
        writer.is_some()
    });
    let syscall = format!("/proc/self/task/{tid}/syscall");
    wait_for("the reader to block in read(2)", || {
        std::fs::read_to_string(&syscall)
            .unwrap_or_else(|e| panic!("reading {syscall}: {e}"))
            .split_ascii_whitespace()
            .next()
            == Some(&nix::libc::SYS_read.to_string())
    });
    let before = HANDLED.load(Ordering::SeqCst);
    // SAFETY: the thread is alive (it has not been joined) and the signal has a handler.
    let sent = unsafe { nix::libc::pthread_kill(reader.as_pthread_t(), Signal::SIGUSR2 as i32) };
    assert_eq!(sent, 0, "pthread_kill");
    // Once the handler ran, the blocked read has returned EINTR.
    wait_for("the signal handler", || {
        HANDLED.load(Ordering::SeqCst) > before
    });

    let mut writer = writer.unwrap();
    writer.write_all(b"4:memory:/c\n").unwrap();
    drop(writer);
    let r = reader
        .join()
        .unwrap()
        .expect("the interrupted read is retried");
    assert_eq!(
        r.dir(crate::cgroup::controller::Controller::Memory)
            .map(|cg| cg.dir.clone()),
        Some(fx.path("sys/fs/cgroup/memory/c"))
    );
}

#[test]
fn a_read_that_fails_for_good_is_not_retried() {
    // Opening a directory succeeds; reading it fails with EISDIR, every time.
    let fx = Fixture::new();
    fx.mountinfo("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
        .cgroup(5, "4:memory:/c\n");
    std::fs::create_dir_all(fx.path("sys/fs/cgroup/memory/c/memory.limit_in_bytes")).unwrap();
    fx.write("sys/fs/cgroup/memory/c/memory.usage_in_bytes", "4096\n");
    fx.write("sys/fs/cgroup/memory/c/memory.stat", "total_rss 4096\n");
    let r = cgroups_of(&fx, 5);
    crate::testutil::debug_log_on();
    // On a thread, so that a read retried forever fails the test instead of hanging it.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(crate::fallback::collect(|| r.memory(false).limit));
    });
    let (limit, notes) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the failing read returned");
    assert_eq!(limit, None);
    assert!(
        notes.len() == 1 && notes[0].contains("memory.limit_in_bytes"),
        "{notes:?}"
    );
}
