//! The worker lost while the containers read: SIGKILLed (some kills with a READ held in
//! flight by the `hang:` failpoint), killed without FUSE_NOTIFY_RESEND (`--no-resend`, what
//! kernels before 6.9 give), aborted by a request (the `crash:` failpoint), and stopped
//! (SIGSTOP: the watchdog's case).

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::common::container::BOUND_FILES;
use crate::common::loads::Loads;
use crate::common::scene::problems;
use crate::common::status::{
    HeldRead, current_worker, read_within, status, wait_new_worker, wait_status,
};
use crate::common::{Daemon, IO_URING_ENV, fuse_dev, inodes, parse_loadavg, signal};
use crate::supervisor::{have_failpoints, with_failpoints};
use crate::{PAUSE, Scene, monotonic_ms, must, stuck};

/// The file whose READs the `hang:` failpoint holds: no container reads it, so the only READ
/// held is the host's.
const HANG_FILE: &str = "proc/loadavg";

/// How long a replaced worker may keep a reader waiting (restart.md §7 item 9).
const RECOVERY: Duration = Duration::from_secs(2);

/// The watchdog's patience: no reply progress for this long while requests wait.
const WATCHDOG: Duration = Duration::from_secs(10);

/// A host read of [`HANG_FILE`] held in flight by the worker of `d`; panics if the read
/// returns on its own (no failpoint held it).
fn held_read(d: &Daemon) -> HeldRead {
    let held = HeldRead::start(d.path(HANG_FILE));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !held.done(),
        "the hang:{HANG_FILE} failpoint should hold the READ in the worker, but it returned; \
         daemon log:\n{}",
        d.log()
    );
    held
}

/// The daemon with `args` and the `hang:` failpoint on [`HANG_FILE`]; `None` (after saying
/// why) without failpoints.
fn hanging_daemon(s: &Scene, args: &[&str]) -> Option<Daemon> {
    if !have_failpoints() {
        return None;
    }
    let cmd = with_failpoints(&format!("hang:{HANG_FILE}"));
    Some(Daemon::start_cmd_on(cmd, &s.mnt, &s.log("daemon"), args))
}

/// The time between kill `i` and the next, varied so that kills land at different points
/// of the probes' rounds (100 to 380 ms).
fn spacing(i: usize) -> Duration {
    Duration::from_millis(100 + (i as u64 * 137) % 281)
}

#[test]
fn twenty_worker_kills_under_load_lose_no_read() {
    let Some(s) = Scene::new() else {
        return;
    };
    let Some(d) = hanging_daemon(&s, &[]) else {
        return;
    };
    let dev = fuse_dev(&s.mnt);
    let nodes = inodes(&s.mnt);
    let loads = Loads::start(&s, &s.mnt);
    // Five of the twenty kills, spread over the run, with a READ held in flight.
    let with_held_read = [3, 7, 11, 15, 19];
    let mut bad = Vec::new();
    let (mut longest_replace, mut longest_held) = (Duration::ZERO, Duration::ZERO);
    for i in 0..20 {
        std::thread::sleep(spacing(i));
        let old = current_worker(&s.mnt);
        let held = with_held_read.contains(&i).then(|| held_read(&d));
        let killed = Instant::now();
        signal(old, Signal::SIGKILL);
        wait_new_worker(&s.mnt, old, Duration::from_secs(5));
        longest_replace = longest_replace.max(killed.elapsed());
        let Some(held) = held else {
            continue;
        };
        match held.wait(Duration::from_secs(5)) {
            Ok((Ok(bytes), at)) => {
                let took = at - killed;
                longest_held = longest_held.max(took);
                if took >= RECOVERY {
                    bad.push(format!(
                        "kill {i}: the held READ was answered after {took:?}"
                    ));
                }
                if let Err(e) = parse_loadavg(&String::from_utf8_lossy(&bytes)) {
                    bad.push(format!("kill {i}: the held READ got a wrong loadavg: {e}"));
                }
            }
            Ok((Err(e), _)) => bad.push(format!("kill {i}: the held READ failed: {e}")),
            Err(e) => bad.push(format!("kill {i}: {e}")),
        }
    }
    std::thread::sleep(PAUSE);
    let stopped = loads.stop();
    stopped.report("20 worker kills");
    eprintln!(
        "a new worker served within {longest_replace:?} of a kill; the held READs were \
         answered within {longest_held:?}; status: {}",
        status(&s.mnt).summary()
    );
    must(stopped.views());
    must(stopped.no_failures());
    must(stopped.stalls_below(RECOVERY));
    must(stopped.kept_descriptor_read_on());
    must(problems("worker kills", bad));
    assert_eq!(
        inodes(&s.mnt),
        nodes,
        "st_ino of every file after the kills"
    );
    assert_eq!(fuse_dev(&s.mnt), dev, "the same connection after the kills");
    let stuck = stuck(&[]);
    assert!(stuck.is_empty(), "stuck after the kills: {stuck:?}");
}

/// The worker's threads with `--no-resend`: each can lose the one READ it is serving.
const THREADS: usize = 2;

#[test]
fn without_resend_a_killed_worker_fails_at_most_its_threads_reads() {
    let Some(s) = Scene::new() else {
        return;
    };
    let threads = THREADS.to_string();
    let Some(d) = hanging_daemon(&s, &["--no-resend", "--threads", &threads]) else {
        return;
    };
    let st = status(&s.mnt);
    assert!(
        !st.resend,
        "--no-resend: the worker must not resend: {st:?}"
    );
    let loads = Loads::start(&s, &s.mnt);
    let mut kills = Vec::new();
    let mut host_errnos = Vec::new();
    let mut bad = Vec::new();
    for i in 0..5 {
        std::thread::sleep(PAUSE);
        let old = current_worker(&s.mnt);
        let held = held_read(&d);
        kills.push(monotonic_ms());
        signal(old, Signal::SIGKILL);
        // No process may wait on a READ of the dead worker for more than 5 s.
        match held.wait(Duration::from_secs(5)) {
            Ok((Ok(_), _)) => host_errnos.push(None),
            Ok((Err(e), _)) => host_errnos.push(Some(e.raw_os_error())),
            Err(e) => {
                bad.push(format!("kill {i}: {e}"));
                host_errnos.push(None);
            }
        }
        wait_new_worker(&s.mnt, old, Duration::from_secs(5));
    }
    std::thread::sleep(PAUSE);
    let stopped = loads.stop();
    stopped.report("5 worker kills without RESEND");
    eprintln!("the host's held READs: {host_errnos:?}");

    must(stopped.views());
    // Every failure is on the list of events (the probe prints the first 50), and each
    // belongs to the kill before it.
    let mut per_kill = vec![0usize; kills.len()];
    let mut errnos = BTreeMap::new();
    for sum in stopped.summaries() {
        if sum.wrong > 0 || sum.failures as usize != sum.events.len() {
            bad.push(format!(
                "container {}: {} failures, {} wrong: {:?}",
                sum.name,
                sum.failures,
                sum.wrong,
                sum.failure_lines()
            ));
        }
        for e in &sum.events {
            let errno = e.errno.clone().unwrap_or_default();
            *errnos.entry(errno.clone()).or_insert(0) += 1;
            // Over io_uring the kernel's ECANCELED (see below) is bounded by the ring
            // entries, not by the serving threads.
            if std::env::var_os(IO_URING_ENV).is_some() && errno == "E125" {
                continue;
            }
            match kills.iter().rposition(|&k| k <= e.at_ms) {
                Some(k) => per_kill[k] += 1,
                None => bad.push(format!(
                    "container {}: a failure before any kill: {e:?}",
                    sum.name
                )),
            }
        }
    }
    for (k, held) in host_errnos.iter().enumerate() {
        if let Some(errno) = held {
            per_kill[k] += 1;
            let name = match errno {
                Some(nix::libc::ECONNABORTED) => "ECONNABORTED".to_string(),
                Some(nix::libc::ECANCELED) => "E125".to_string(),
                other => format!("{other:?}"),
            };
            *errnos.entry(name).or_insert(0) += 1;
        }
    }
    eprintln!("failed reads by kill {per_kill:?}, by errno {errnos:?}");
    for (k, n) in per_kill.iter().enumerate() {
        if *n > THREADS {
            bad.push(format!("kill {k}: {n} failed reads with {THREADS} threads"));
        }
    }
    // Over io_uring the kernel also ends with ECANCELED what it handed to a ring entry of
    // the worker in the instant it died (see `Loads::no_failures`).
    let over_uring = std::env::var_os(IO_URING_ENV).is_some();
    if errnos
        .keys()
        .any(|e| e != "ECONNABORTED" && !(over_uring && e == "E125"))
    {
        bad.push(format!(
            "a READ lost with the worker fails with ECONNABORTED, and nothing else fails: \
             {errnos:?}"
        ));
    }
    let stuck = stuck(&[]);
    if !stuck.is_empty() {
        bad.push(format!("stuck: {}", stuck.join("; ")));
    }
    must(problems("worker kills without RESEND", bad));
    read_within(&d.path("proc/meminfo"), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("serving after the kills: {e}"));
}

#[test]
fn a_read_that_crashes_the_worker_gets_eio_on_its_third_delivery() {
    let Some(s) = Scene::new() else {
        return;
    };
    if !have_failpoints() {
        return;
    }
    let cmd = with_failpoints("crash:proc/uptime");
    let mut d = Daemon::start_cmd_on(cmd, &s.mnt, &s.log("daemon"), &[]);
    let first = status(&s.mnt);
    // The containers read the kernel's uptime: each of their READs of ours would crash too.
    let files: Vec<&str> = BOUND_FILES
        .iter()
        .copied()
        .filter(|&f| f != "proc/uptime")
        .collect();
    let loads = Loads::start_binding(&s, &s.mnt, &files);
    std::thread::sleep(PAUSE);
    let poison = HeldRead::start(d.path("proc/uptime")).wait(Duration::from_secs(15));
    std::thread::sleep(PAUSE);
    let stopped = loads.stop();
    stopped.report("a READ crashing the worker");
    let after = status(&s.mnt);
    eprintln!(
        "status before: {}; after: {}",
        first.summary(),
        after.summary()
    );

    match poison {
        Ok((Err(e), _)) if e.raw_os_error() == Some(nix::libc::EIO) => {}
        other => panic!(
            "the READ that crashes the worker should fail with EIO once it crashed it twice, \
             got {other:?}; daemon log:\n{}",
            d.log()
        ),
    }
    assert!(
        after.worker_restarts >= first.worker_restarts + 2,
        "the poison READ crashed two workers, so two more were started: before {first:?}, \
         after {after:?}"
    );
    must(stopped.views());
    must(stopped.no_failures());
    read_within(&d.path("proc/meminfo"), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("serving after the crashes: {e}"));
    assert!(
        d.wait_exit(Duration::ZERO).is_none(),
        "the supervisor stays up; its log:\n{}",
        d.log()
    );
}

/// SIGKILLs the stopped worker the test left behind (only if it is still stopped), so a
/// test that fails before the watchdog acts leaves no process.
struct StoppedWorker(u32);

impl Drop for StoppedWorker {
    fn drop(&mut self) {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.0)).unwrap_or_default();
        let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
        if state == Some('T') {
            signal(self.0, Signal::SIGKILL);
        }
    }
}

#[test]
fn a_stopped_worker_is_replaced_by_the_watchdog() {
    let Some(s) = Scene::new() else {
        return;
    };
    let d = Daemon::start_on(&s.mnt, &s.log("daemon"), &[]);
    let loads = Loads::start(&s, &s.mnt);
    std::thread::sleep(PAUSE);
    let old = current_worker(&s.mnt);
    let stopped_at = Instant::now();
    signal(old, Signal::SIGSTOP);
    let _guard = StoppedWorker(old);
    // A stop takes effect as each thread next enters the kernel: until every thread is
    // stopped, one may still answer the read below.
    assert!(
        crate::common::wait_until(Duration::from_secs(5), || {
            crate::common::all_threads_stopped(old)
        }),
        "worker {old} did not stop"
    );
    let held = HeldRead::start(d.path("proc/meminfo"));
    wait_status(&s.mnt, Duration::from_secs(2), "a request waiting", |st| {
        st.waiting > 0
    });
    let answered = held.wait(WATCHDOG + RECOVERY);
    let (_, replaced) = wait_new_worker(&s.mnt, old, Duration::from_secs(1));
    std::thread::sleep(PAUSE);
    let stopped = loads.stop();
    stopped.report("a stopped worker");
    eprintln!("the watchdog's replacement: {replaced:?}");

    match answered {
        Ok((Ok(text), at)) => {
            let took = at - stopped_at;
            eprintln!("the waiting read was answered {took:?} after SIGSTOP");
            assert!(
                took < WATCHDOG + RECOVERY,
                "answered after {took:?}, more than the watchdog's {WATCHDOG:?} + {RECOVERY:?}"
            );
            assert!(
                text.starts_with(b"MemTotal:"),
                "{}",
                String::from_utf8_lossy(&text)
            );
        }
        other => panic!(
            "the read waiting on the stopped worker: {other:?}; daemon log:\n{}",
            d.log()
        ),
    }
    must(stopped.views());
    must(stopped.no_failures());
    must(stopped.stalls_below(WATCHDOG + RECOVERY));
}

/// A READ served at the moment a poison pill crashes the worker is resent with it; served
/// side by side again, the innocent one (made slow by the `slow:` failpoint) would be in
/// flight at the second crash too and be answered EIO with the pill. The next worker serves
/// such suspects one at a time, so only the pill fails.
#[test]
fn a_read_in_flight_beside_a_poison_pill_is_not_answered_eio() {
    require!(fuse);
    if !have_failpoints() {
        return;
    }
    let dir = crate::common::TestDir::new();
    let mnt = dir.join("mnt");
    let cmd = with_failpoints("slow:proc/stat,crash:proc/uptime");
    let mut d = Daemon::start_cmd_on(cmd, &mnt, &dir.join("daemon.log"), &[]);
    let bystander = HeldRead::start(d.path("proc/stat"));
    // Its READ is being served (500 ms) when the pill arrives.
    std::thread::sleep(Duration::from_millis(150));
    let pill = HeldRead::start(d.path("proc/uptime"));
    let (served, _) = bystander
        .wait(Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{e}; daemon log:\n{}", d.log()));
    let text = served.unwrap_or_else(|e| {
        panic!(
            "the bystander's read of proc/stat failed ({e}); daemon log:\n{}",
            d.log()
        )
    });
    assert!(
        text.starts_with(b"cpu "),
        "the bystander got {:?}",
        String::from_utf8_lossy(&text)
    );
    match pill.wait(Duration::from_secs(15)) {
        Ok((Err(e), _)) if e.raw_os_error() == Some(nix::libc::EIO) => {}
        other => panic!(
            "the pill should fail with EIO, got {other:?}; daemon log:\n{}",
            d.log()
        ),
    }
    assert!(
        d.wait_exit(Duration::ZERO).is_none(),
        "the supervisor stays up; its log:\n{}",
        d.log()
    );
}
