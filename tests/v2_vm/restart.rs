//! A worker crash on a kernel without `FUSE_NOTIFY_RESEND` (Linux 6.9 brought it): the
//! README kernel matrix's row for older kernels, on Debian's 6.1 in the VM.
//!
//! The payload's `restart_start` starts `lxcfs-rs --threads 2` with the failpoint
//! `hang:proc/uptime` (the worker holds the first delivery of every READ of proc/uptime), runs
//! a loop of readers of proc/meminfo, proc/stat and proc/cpuinfo, and kills the worker with
//! SIGKILL five times, each while an uptime read is held. Such a kernel cannot resend a
//! request the dead worker had read, so that read must fail at once with `ECONNABORTED`
//! rather than wait forever; per kill at most one read per serving thread fails, and every
//! other read only pauses until the supervisor's next worker serves.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::common::skip;
use crate::vm::{Vm, vm};

/// Serving threads of the payload's daemon (its `RESTART_THREADS`).
const THREADS: usize = 2;
/// Kills of its worker (its `RESTART_KILLS`).
const KILLS: usize = 5;
/// `strerror(ECONNABORTED)`, which dd prints.
const ECONNABORTED: &str = "Software caused connection abort";
/// The longest a held read may take to fail after the kill of its worker, in seconds. It fails
/// "at once" (10-30 ms under TCG, /proc/uptime counting in 10 ms); the alternative is
/// forever, which the payload reports as `held_rc=hung` after 10 s. Loose, for slow CI hosts.
const HELD_FAILS_WITHIN: f64 = 2.0;

/// What `lxcfs-rs status --json` says, as far as these tests need it.
#[derive(Debug, Deserialize)]
struct Status {
    supervisor_pid: u32,
    worker_pid: Option<u32>,
    resend: Option<bool>,
    worker_restarts: u64,
    generation: u64,
    threads: usize,
}

/// One kill, as the payload's `kill.N` and `kill.N.err` record it.
#[derive(Debug)]
struct Kill {
    /// 1-based.
    n: usize,
    /// The worker killed, its pid from the status.
    worker: u32,
    /// When (seconds of the VM's uptime).
    killed: f64,
    /// The held reader's state and wait channel just before the kill.
    held_state: String,
    held_wchan: String,
    /// The held reader's exit status, or `hung` when it had not ended 10 s after the kill.
    held_rc: String,
    /// When it ended.
    held_end: Option<f64>,
    /// What its dd said.
    held_err: String,
    /// When the mount served proc/meminfo again.
    served: f64,
    /// The loop's failed reads so far (after this kill).
    loop_fails: usize,
}

/// Everything the payload's `restart` sent back.
struct Restart {
    before: Status,
    after: Status,
    kills: Vec<Kill>,
    /// The loop's successful and failed reads.
    loop_ok: usize,
    loop_fail: usize,
    /// What its failed dd's said, one line each.
    loop_err: Vec<String>,
    /// Tasks stuck 5 s after the last kill (`pid/task/tid state wchan comm`).
    scan: Vec<String>,
    served: String,
    daemon_exit: u64,
    daemon_log: String,
    kernel: String,
}

/// The scenario's results, or `None` when the VM is unavailable or the binary has no
/// failpoints (release builds; skipped, or a failure under CI). Panics when the payload could
/// not run it to the end.
fn scenario() -> Option<Restart> {
    let vm = vm()?;
    if !cfg!(debug_assertions) {
        skip("the daemon's failpoints exist in debug builds only (run without --release)");
        return None;
    }
    Some(Restart::from_vm(vm))
}

/// `key=value` lines.
fn key_values(text: &str) -> BTreeMap<&str, &str> {
    text.lines().filter_map(|l| l.split_once('=')).collect()
}

fn status(vm: &Vm, name: &str) -> Status {
    let text = vm.file(name);
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{name} is not the status of the contract ({e}): {text}"))
}

fn seconds(name: &str, v: &str) -> f64 {
    v.parse()
        .unwrap_or_else(|e| panic!("{name} is not a number of seconds ({e}): {v:?}"))
}

impl Restart {
    fn from_vm(vm: &Vm) -> Restart {
        let daemon_log = vm.file("restart/daemon.log");
        if let Some(why) = vm.file_if_sent("restart/failed") {
            panic!(
                "the payload's restart scenario stopped early: {}\ntasks stuck 5 s after the \
                 last kill (`pid/task/tid state wchan comm`):\n{}\nthe daemon's log:\n{daemon_log}",
                why.trim(),
                vm.file_if_sent("restart/scan").unwrap_or_default()
            );
        }
        let kills = (1..=KILLS)
            .map(|n| {
                let name = format!("restart/kill.{n}");
                let text = vm.file(&name);
                let kv = key_values(&text);
                let get = |k: &str| -> &str {
                    kv.get(k)
                        .unwrap_or_else(|| panic!("{name} has no {k}: {text:?}"))
                };
                Kill {
                    n,
                    worker: get("worker")
                        .parse()
                        .unwrap_or_else(|e| panic!("{name}: worker ({e}): {text:?}")),
                    killed: seconds(&name, get("killed")),
                    held_state: get("held_state").to_string(),
                    held_wchan: get("held_wchan").to_string(),
                    held_rc: get("held_rc").to_string(),
                    held_end: Some(get("held_end"))
                        .filter(|v| *v != "-")
                        .map(|v| seconds(&name, v)),
                    held_err: vm.file_if_sent(&format!("{name}.err")).unwrap_or_default(),
                    served: seconds(&name, get("served")),
                    loop_fails: get("loop_fails")
                        .parse()
                        .unwrap_or_else(|e| panic!("{name}: loop_fails ({e}): {text:?}")),
                }
            })
            .collect();
        let counts = vm.file("restart/loop");
        let kv = key_values(&counts);
        let count = |k: &str| -> usize {
            kv.get(k)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("restart/loop has no number {k}: {counts:?}"))
        };
        let lines = |name: &str| -> Vec<String> {
            vm.file_if_sent(name)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect()
        };
        Restart {
            before: status(vm, "restart/status.before"),
            after: status(vm, "restart/status.after"),
            kills,
            loop_ok: count("ok"),
            loop_fail: count("fail"),
            loop_err: lines("restart/loop.err"),
            scan: lines("restart/scan"),
            served: vm.file("restart/served").trim().to_string(),
            daemon_exit: vm.number("restart/daemon.exit"),
            daemon_log,
            kernel: vm.file("uname").trim().to_string(),
        }
    }

    /// The daemon's log lines that contain `text`.
    fn logged(&self, text: &str) -> usize {
        self.daemon_log.lines().filter(|l| l.contains(text)).count()
    }

    /// Context for a failure message.
    fn context(&self) -> String {
        format!(
            "kills: {:#?}\nthe loop: {} reads, {} failed: {:?}\nthe daemon's log:\n{}",
            self.kills, self.loop_ok, self.loop_fail, self.loop_err, self.daemon_log
        )
    }
}

/// `6.1.0-57-amd64` as (6, 1).
fn major_minor(release: &str) -> (u32, u32) {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn a_kernel_before_6_9_cannot_resend_and_every_worker_knows() {
    let Some(r) = scenario() else { return };
    assert!(
        major_minor(&r.kernel) < (6, 9),
        "this scenario is the kernel matrix's row for kernels without FUSE_NOTIFY_RESEND, \
         but the VM booted {} (linux-image-amd64 of the configured Debian release)",
        r.kernel
    );
    for (when, st) in [("before the kills", &r.before), ("after them", &r.after)] {
        assert_eq!(
            st.resend,
            Some(false),
            "on {} the status {when} should say resend false: {st:?}",
            r.kernel
        );
    }
    // Each worker writes the notification at start and hears EINVAL: the first and the one
    // after each kill.
    assert_eq!(
        r.logged("this kernel cannot resend FUSE requests"),
        KILLS + 1,
        "every worker should have been told EINVAL for FUSE_NOTIFY_RESEND; {}",
        r.context()
    );
    assert_eq!(
        r.logged("FUSE_NOTIFY_RESEND failed"),
        0,
        "no other error for the notification; {}",
        r.context()
    );
}

#[test]
fn a_read_held_by_a_killed_worker_fails_at_once_with_econnaborted() {
    let Some(r) = scenario() else { return };
    assert_eq!(
        r.logged("failpoint: holding a READ of proc/uptime"),
        KILLS,
        "each held reader's READ should have reached a worker and been held there; {}",
        r.context()
    );
    for k in &r.kills {
        // Sleeping in the kernel for the answer (on 6.1, in request_wait_answer).
        assert!(
            k.held_state == "S" && !k.held_wchan.is_empty() && k.held_wchan != "0",
            "kill {}: the held reader should have been waiting for its answer when the \
             worker was killed; {}",
            k.n,
            r.context()
        );
        assert_ne!(
            k.held_rc,
            "hung",
            "kill {}: the read held by the killed worker was still waiting 10 s later (a \
             kernel without resend must fail it, not keep it); {}",
            k.n,
            r.context()
        );
        assert!(
            k.held_rc == "1" && k.held_err.contains(ECONNABORTED),
            "kill {}: the held read should fail with ECONNABORTED ({ECONNABORTED:?}); dd \
             exited {} saying {:?}",
            k.n,
            k.held_rc,
            k.held_err
        );
        let took = k.held_end.expect("ended") - k.killed;
        assert!(
            took <= HELD_FAILS_WITHIN,
            "kill {}: the held read failed {took:.2} s after the kill, not at once; {}",
            k.n,
            r.context()
        );
    }
    let mut previous = 0;
    for k in &r.kills {
        eprintln!(
            "kill {}: worker {} killed at {:.2} s; the held read failed after {:.0} ms; \
             the loop's failed reads {}; the mount served again after {:.0} ms",
            k.n,
            k.worker,
            k.killed,
            (k.held_end.unwrap_or(f64::NAN) - k.killed) * 1000.0,
            k.loop_fails - previous,
            (k.served - k.killed) * 1000.0
        );
        previous = k.loop_fails;
    }
}

#[test]
fn a_kill_fails_at_most_one_read_per_serving_thread_and_only_with_econnaborted() {
    let Some(r) = scenario() else { return };
    assert_eq!(r.before.threads, THREADS, "the payload's --threads");
    assert_eq!(
        r.loop_err.len(),
        r.loop_fail,
        "one line of dd's per failed read of the loop: {:?}",
        r.loop_err
    );
    for line in &r.loop_err {
        assert!(
            line.starts_with("dd: ") && line.ends_with(ECONNABORTED),
            "a read in flight when its worker dies fails with ECONNABORTED, and nothing else \
             fails; the loop's dd said {line:?}; {}",
            r.context()
        );
    }
    let mut previous = 0;
    for k in &r.kills {
        // The held read is one of the reads in flight: one thread was serving it.
        let failed = 1 + k.loop_fails - previous;
        assert!(
            failed <= THREADS,
            "kill {}: {failed} reads failed (the held one and {} of the loop), more than one \
             per serving thread ({THREADS}); {}",
            k.n,
            failed - 1,
            r.context()
        );
        previous = k.loop_fails;
    }
    assert_eq!(
        r.loop_fail,
        previous,
        "no read of the loop should fail once the mount served again after the last kill; {}",
        r.context()
    );
    // Reads went on across the kills: they paused, they did not stop.
    assert!(
        r.loop_ok >= 3 * KILLS,
        "the loop read only {} times through {KILLS} kills; {}",
        r.loop_ok,
        r.context()
    );
}

#[test]
fn nothing_waits_on_the_mount_5_s_after_the_last_kill() {
    let Some(r) = scenario() else { return };
    assert!(
        r.scan.is_empty(),
        "5 s after the last kill, with the reader loop stopped, no task should be in D state \
         or waiting for a FUSE answer (`pid/task/tid state wchan comm`):\n{}\n{}",
        r.scan.join("\n"),
        r.context()
    );
}

#[test]
fn the_supervisor_replaces_every_killed_worker_and_serves_on() {
    let Some(r) = scenario() else { return };
    assert_eq!(
        r.before.worker_restarts, 0,
        "no restart before the kills: {:?}",
        r.before
    );
    assert_eq!(
        r.after.worker_restarts,
        KILLS as u64,
        "worker_restarts should count the {KILLS} kills, no more (no watchdog kill, no \
         crash of a worker on its own): {:?}; {}",
        r.after,
        r.context()
    );
    assert_eq!(
        r.after.generation,
        r.before.generation + KILLS as u64,
        "each new worker serves a generation of its own"
    );
    assert_eq!(
        r.after.supervisor_pid, r.before.supervisor_pid,
        "the supervisor itself lives on"
    );
    assert_eq!(
        r.logged("died (SIGKILL)"),
        KILLS,
        "the supervisor should have seen each kill; {}",
        r.context()
    );
    // Each kill's worker pid came from the status: the first is the one that served first,
    // and each later one a worker started after the previous kill.
    assert_eq!(Some(r.kills[0].worker), r.before.worker_pid);
    let mut killed: Vec<u32> = r.kills.iter().map(|k| k.worker).collect();
    killed.sort_unstable();
    killed.dedup();
    assert_eq!(
        killed.len(),
        KILLS,
        "every kill should have hit another worker; {}",
        r.context()
    );
    let last = r
        .after
        .worker_pid
        .unwrap_or_else(|| panic!("no worker after the kills: {:?}", r.after));
    assert!(
        !killed.contains(&last),
        "the worker after the kills ({last}) should be a new one"
    );
    assert_eq!(
        r.served,
        "yes",
        "the mount should serve proc/meminfo after the kills; {}",
        r.context()
    );
    assert_eq!(
        r.daemon_exit,
        0,
        "the daemon should exit 0 on SIGTERM after the kills; {}",
        r.context()
    );
}
