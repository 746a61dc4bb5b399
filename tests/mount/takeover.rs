//! `--takeover`: a second daemon takes the live FUSE connection over from the first, which
//! parks and hands its `/dev/fuse` descriptors and session state over a unix socket. The
//! kernel's connection is the same, so no INIT comes; open files read on; node ids (`st_ino`)
//! are the same in every process.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::{Daemon, TestDir, fuse_mount_at, inodes};

/// The debug lines of `log` that record an INIT handshake.
fn inits(log: &str) -> usize {
    log.lines().filter(|l| l.contains("INIT: kernel")).count()
}

#[test]
fn a_successor_serves_the_same_connection_without_init() {
    require!(mount);
    let dir = TestDir::new();
    let pidfile = dir.join("lxcfs-rs.pid");
    let pidfile_arg = pidfile.to_str().expect("utf-8 path");
    let mut first = Daemon::start(&["-d", "-p", pidfile_arg]);
    let mnt = first.mnt.clone();
    let dev = first
        .dev()
        .expect("the first daemon's connection")
        .to_string();
    assert_eq!(inits(&first.log()), 1, "a fresh mount negotiates INIT once");
    let before = inodes(&mnt);
    assert!(
        before.contains_key("proc/meminfo") && before.len() > 20,
        "{before:?}"
    );

    // Held across the switch: a file read halfway, a file re-read from 0 (as top does), and
    // a directory listed halfway.
    let mut meminfo = File::open(mnt.join("proc/meminfo")).unwrap();
    let mut head = [0u8; 9];
    meminfo.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"MemTotal:");
    let stat = File::open(mnt.join("proc/stat")).unwrap();
    let mut listing = fs::read_dir(mnt.join("proc")).unwrap();
    let first_entry = listing.next().unwrap().unwrap().file_name();

    // A reader reading all along: not one failed read, only a pause.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, path) = (stop.clone(), mnt.join("proc/meminfo"));
        std::thread::spawn(move || {
            let (mut reads, mut failures, mut longest) = (0u64, Vec::new(), Duration::ZERO);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match fs::read_to_string(&path) {
                    Ok(text) if text.starts_with("MemTotal:") => reads += 1,
                    Ok(text) => failures.push(format!("wrong content: {text:?}")),
                    Err(e) => failures.push(e.to_string()),
                }
                longest = longest.max(t.elapsed());
            }
            (reads, failures, longest)
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let mut second = Daemon::start_on(
        &mnt,
        &dir.join("second.log"),
        &["-d", "--takeover", "-p", pidfile_arg],
    );
    let st = first
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the first daemon did not exit; its log:\n{}", first.log()));
    first.hand_mount_over();
    assert_eq!(st.code(), Some(0), "first daemon's log:\n{}", first.log());
    assert!(
        first.log().contains("handed") && first.log().contains("without unmounting"),
        "{}",
        first.log()
    );
    assert_eq!(
        fuse_mount_at(&mnt).map(|m| m.dev).as_deref(),
        Some(dev.as_str()),
        "the same FUSE connection stays mounted"
    );

    let mut rest = String::new();
    meminfo
        .read_to_string(&mut rest)
        .expect("a file opened before the takeover reads on");
    assert!(rest.contains("\nMemFree:"), "{rest}");
    let mut again = vec![0u8; 65536];
    let n = stat
        .read_at(&mut again, 0)
        .expect("re-reading a kept /proc/stat at 0");
    assert!(
        again[..n].starts_with(b"cpu "),
        "{}",
        String::from_utf8_lossy(&again[..n])
    );
    let mut names: Vec<_> = listing.map(|e| e.unwrap().file_name()).collect();
    names.push(first_entry);
    names.sort();
    let mut fresh: Vec<_> = fs::read_dir(mnt.join("proc"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    fresh.sort();
    assert_eq!(
        names, fresh,
        "a directory listed across the takeover lists every entry once"
    );

    assert_eq!(
        inodes(&mnt),
        before,
        "st_ino of every node after the takeover"
    );
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let (reads, failures, longest) = crate::common::join_reader(reader, Duration::from_secs(10));
    assert!(
        failures.is_empty(),
        "reads failed across the takeover: {failures:?}"
    );
    assert!(reads > 10, "the reader read {reads} times");
    eprintln!("{reads} reads across the takeover, none failed; the longest took {longest:?}");

    // The pidfile passes to the successor once the first lets go of it.
    let holder = || {
        fs::read_to_string(&pidfile)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let passed = crate::common::wait_until(Duration::from_secs(10), || {
        holder() == second.pid.to_string()
    });
    assert!(
        passed,
        "pidfile holds {:?}, not the successor's pid {}",
        holder(),
        second.pid
    );
    let log = second.log();
    assert_eq!(inits(&log), 0, "the successor must not see an INIT:\n{log}");
    assert!(log.contains("generation 2, resend yes"), "{log}");
    assert!(
        log.contains("asked the kernel to resend"),
        "kernel 6.18 offers FUSE_HAS_RESEND and accepts the notification:\n{log}"
    );

    // Without --takeover a live mount is still refused; the successor stops as usual.
    second.assert_stops_cleanly(nix::sys::signal::Signal::SIGTERM);
    drop(second);
    drop(first);
}

#[test]
fn node_ids_are_the_same_in_every_fresh_start() {
    require!(mount);
    let a = Daemon::start(&[]);
    let first = inodes(&a.mnt);
    drop(a);
    let b = Daemon::start(&[]);
    assert_eq!(inodes(&b.mnt), first);
    assert_eq!(
        first["proc/meminfo"],
        lxcfs_rs::fs::node_id("proc/meminfo"),
        "st_ino is the path's fixed node id"
    );
}

#[test]
fn takeover_without_a_serving_daemon_fails_clearly() {
    require!(mount);
    let dir = TestDir::new();
    let mnt = dir.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut d = Daemon::spawn(&mnt, &dir.join("log"), &["--takeover"]);
    let st = d.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(st.code(), Some(1));
    let log = d.log();
    assert!(
        log.contains("cannot take the mount over (--takeover): no lxcfs-rs serving"),
        "{log}"
    );
    assert!(fuse_mount_at(&mnt).is_none());
}

/// A successor that takes the descriptors and never confirms (it died, say): the serving
/// daemon resumes, and readers never notice.
#[test]
fn a_successor_that_does_not_confirm_leaves_the_daemon_serving() {
    require!(mount);
    let mut d = Daemon::start(&[]);
    let socket_dir = Path::new(lxcfs_rs::host::own::HANDOFF_DIR);
    let received = lxcfs_rs::daemon::handoff::take_over(socket_dir, &d.mnt)
        .unwrap_or_else(|e| panic!("asking for the mount: {e}; daemon log:\n{}", d.log()));
    assert!(!received.fds.is_empty(), "the descriptors came");
    assert!(received.state.init.is_some(), "with the negotiated INIT");
    drop(received);
    // In a thread: were nobody serving, the read would wait forever.
    let (tx, rx) = std::sync::mpsc::channel();
    let path = d.path("proc/meminfo");
    std::thread::spawn(move || tx.send(fs::read_to_string(path)));
    let text = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("no answer within 10 s; daemon log:\n{}", d.log()))
        .expect("reading after the refusal");
    assert!(text.starts_with("MemTotal:"), "{text}");
    assert!(
        d.wait_exit(Duration::from_millis(500)).is_none(),
        "the daemon must keep running; its log:\n{}",
        d.log()
    );
    assert!(d.log().contains("serving on"), "{}", d.log());
    // And it can still hand over later.
    let dir = TestDir::new();
    let mut second = Daemon::start_on(&d.mnt.clone(), &dir.join("second.log"), &["--takeover"]);
    let st = d
        .wait_exit(Duration::from_secs(10))
        .expect("the first daemon exits");
    d.hand_mount_over();
    assert_eq!(st.code(), Some(0));
    second.assert_stops_cleanly(nix::sys::signal::Signal::SIGTERM);
}

/// A worker that cannot start (the debug failpoint `worker:exit`): on a fresh mount the daemon
/// fails with the worker's error and leaves no mount; as a successor it fails without
/// touching the mount, and the daemon it asked serves on at once, losing no read.
#[test]
fn a_worker_that_cannot_start_fails_the_start_and_spares_a_live_mount() {
    require!(mount);
    let dir = TestDir::new();
    let mnt = dir.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut cmd = std::process::Command::new(crate::common::BIN);
    cmd.env("LXCFS_RS_FAILPOINTS", "worker:exit");
    let mut fresh = Daemon::spawn_cmd_on(cmd, &mnt, &dir.join("fresh.log"), &[]);
    let st = fresh
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no exit; log:\n{}", fresh.log()));
    let log = fresh.log();
    assert_eq!(st.code(), Some(1), "{log}");
    assert!(
        log.contains("the worker could not start") && log.contains("failpoint worker:exit"),
        "{log}"
    );
    assert!(fuse_mount_at(&mnt).is_none(), "a mount left behind:\n{log}");

    let mut d = Daemon::start(&[]);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, path) = (stop.clone(), d.path("proc/meminfo"));
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = fs::read_to_string(&path) {
                    failures.push(e.to_string());
                }
            }
            failures
        })
    };
    let mut cmd = std::process::Command::new(crate::common::BIN);
    cmd.env("LXCFS_RS_FAILPOINTS", "worker:exit");
    let mut successor = Daemon::spawn_cmd_on(
        cmd,
        &d.mnt.clone(),
        &dir.join("successor.log"),
        &["--takeover"],
    );
    let started = Instant::now();
    let st = successor
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no exit; log:\n{}", successor.log()));
    assert_eq!(st.code(), Some(1), "{}", successor.log());
    assert!(successor.log().contains("serves on"), "{}", successor.log());
    let served_on = crate::common::wait_until(Duration::from_secs(5), || {
        d.log().contains("did not take the mount over; serving on")
    });
    assert!(served_on, "{}", d.log());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the daemon waited for an acknowledgement that could not come: {:?}",
        started.elapsed()
    );
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let failures = crate::common::join_reader(reader, Duration::from_secs(10));
    assert!(failures.is_empty(), "failed reads: {failures:?}");
    assert!(
        d.wait_exit(Duration::from_millis(100)).is_none(),
        "{}",
        d.log()
    );
    d.assert_stops_cleanly(nix::sys::signal::Signal::SIGTERM);
}

/// Reads `path` in a loop until told to stop: (reads, failures).
fn reading(
    path: std::path::PathBuf,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<(u64, Vec<String>)>) {
    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut reads, mut failures) = (0u64, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match fs::read_to_string(&path) {
                    Ok(text) if text.starts_with("MemTotal:") => reads += 1,
                    Ok(text) => failures.push(format!("wrong content: {text:?}")),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            (reads, failures)
        })
    };
    (stop, handle)
}

/// Whether process `pid` holds a descriptor of `/dev/fuse`.
fn holds_dev_fuse(pid: u32) -> bool {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(Result::ok)
                .any(|fd| fs::read_link(fd.path()).is_ok_and(|t| t == Path::new("/dev/fuse")))
        })
        .unwrap_or(false)
}

/// What a container or pod started beside a serving one runs: `--takeover-if-running` takes
/// the live connection over with no failed read, and the old daemon, with
/// `--wait-after-handoff`, stays (so a restarting supervisor does not start it again) holding
/// nothing, and exits 0 on SIGTERM leaving the mount to its successor.
#[test]
fn takeover_if_running_takes_over_and_the_old_daemon_waits_holding_nothing() {
    require!(mount);
    let dir = TestDir::new();
    let pidfile = dir.join("lxcfs-rs.pid");
    let pidfile_arg = pidfile.to_str().expect("utf-8 path");
    let mut first = Daemon::start(&[
        "--takeover-if-running",
        "--wait-after-handoff",
        "-p",
        pidfile_arg,
    ]);
    assert!(
        holds_dev_fuse(first.pid),
        "the serving supervisor holds /dev/fuse"
    );
    let mnt = first.mnt.clone();
    let dev = first.dev().expect("mounted").to_string();
    let (stop, reader) = reading(mnt.join("proc/meminfo"));
    std::thread::sleep(Duration::from_millis(200));
    let mut second = Daemon::start_on(
        &mnt,
        &dir.join("second.log"),
        &[
            "--takeover-if-running",
            "--wait-after-handoff",
            "-p",
            pidfile_arg,
        ],
    );
    let waiting = crate::common::wait_until(Duration::from_secs(10), || {
        first.log().contains("waiting for SIGTERM")
    });
    assert!(
        waiting,
        "the first daemon did not hand over:\n{}",
        first.log()
    );
    first.hand_mount_over();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (reads, failures) = crate::common::join_reader(reader, Duration::from_secs(10));
    assert!(
        reads > 0 && failures.is_empty(),
        "{reads} reads, failed: {failures:?}"
    );
    assert_eq!(fuse_mount_at(&mnt).map(|m| m.dev), Some(dev.clone()));
    assert!(
        first.wait_exit(Duration::from_millis(500)).is_none(),
        "the first daemon must stay after the handoff:\n{}",
        first.log()
    );
    assert!(
        !holds_dev_fuse(first.pid),
        "the waiting daemon still holds /dev/fuse"
    );
    assert!(
        crate::common::wait_until(Duration::from_secs(10), || fs::read_to_string(&pidfile)
            .is_ok_and(|p| p.trim() == second.pid.to_string())),
        "the pidfile passes to the successor: {:?}",
        fs::read_to_string(&pidfile)
    );
    assert_eq!(
        second.status()["supervisor_pid"].as_u64(),
        Some(u64::from(second.pid))
    );

    let st = first
        .terminate()
        .expect("the waiting daemon exits on SIGTERM");
    assert_eq!(st.code(), Some(0), "{}", first.log());
    assert_eq!(
        fuse_mount_at(&mnt).map(|m| m.dev),
        Some(dev),
        "the waiting daemon's exit leaves the mount alone"
    );
    let text = fs::read_to_string(mnt.join("proc/meminfo")).expect("served by the successor");
    assert!(text.starts_with("MemTotal:"), "{text}");
    second.assert_stops_cleanly(nix::sys::signal::Signal::SIGTERM);
}

/// With nobody serving, `--takeover-if-running` mounts: on an empty mount point, and on a
/// dead mount left by a daemon killed with its socket left behind.
#[test]
fn takeover_if_running_with_nobody_serving_mounts_afresh() {
    require!(mount);
    let mut first = Daemon::start(&["--takeover-if-running"]);
    assert!(
        first.log().contains("no lxcfs-rs serves"),
        "{}",
        first.log()
    );
    let mnt = first.mnt.clone();
    let worker = first.worker_pid();
    crate::common::status::kill_supervisor_and_worker(&mut first, Some(worker));
    let dir = TestDir::new();
    // Nothing holds the dead connection any more, so the fresh one may get its device
    // number again: the log tells that the dead mount was detached and a new one made.
    let second = Daemon::start_on(&mnt, &dir.join("second.log"), &["--takeover-if-running"]);
    assert!(
        second.log().contains("detaching a dead mount"),
        "{}",
        second.log()
    );
    drop(second);
    drop(first);
}

/// A file read to its end before a takeover ends there after it: the successor adopts the
/// handle without its snapshot and, told by the ledger the predecessor handed over where
/// that snapshot ended, answers EOF instead of the tail of a fresh, longer render. The
/// fresh render is made longer for sure by reading on from another reader: a process in a
/// cgroup with one CPU reads `proc/cpuinfo` through a descriptor it shares with the test,
/// whose own (host) view lists two.
#[test]
fn a_file_read_to_its_end_before_a_takeover_ends_there_after_it() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    require!(mount);
    require!(cpus_0_and_1);
    let dir = TestDir::new();
    let mut first = Daemon::start(&[]);
    let mnt = first.mnt.clone();
    let cg = crate::common::Cgroup::new();
    cg.set_cpus("0");
    let file = File::open(mnt.join("proc/cpuinfo")).unwrap();
    let fd = file.as_raw_fd();
    // One read(2) of the shared description, in the cgroup: the limited view, whole.
    let mut cmd = cg.command(&["dd", "bs=65536", "count=1", "status=none"]);
    // SAFETY: dup2 is async-signal-safe; the child gets our description as its stdin.
    unsafe {
        cmd.pre_exec(move || {
            if nix::libc::dup2(fd, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let read = crate::common::checked(cmd, &["dd", "in the cgroup"]);
    assert_eq!(read.matches("processor\t:").count(), 1, "{read}");
    let host = fs::read_to_string(mnt.join("proc/cpuinfo")).unwrap();
    assert!(
        host.len() > read.len(),
        "the host's view ({} bytes) must be longer than the cgroup's ({})",
        host.len(),
        read.len()
    );

    let mut second = Daemon::start_on(&mnt, &dir.join("second.log"), &["--takeover"]);
    first
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the first daemon did not exit; its log:\n{}", first.log()));
    first.hand_mount_over();
    second.wait_mounted();

    // The test reads on from where the cgroup's reader stopped: the end of its file.
    let mut rest = Vec::new();
    (&file).read_to_end(&mut rest).unwrap();
    assert!(
        rest.is_empty(),
        "after the takeover the file went on with {} bytes of another render: {:?}",
        rest.len(),
        String::from_utf8_lossy(&rest)
    );
    // A new open reads the successor's fresh view, whole.
    let fresh = fs::read_to_string(mnt.join("proc/cpuinfo")).unwrap();
    assert_eq!(fresh.matches("processor\t:").count(), 2, "{fresh}");
    second.terminate();
}
