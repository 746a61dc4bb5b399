//! lxcfs-rs as a systemd service, under a real systemd: a Debian 12 root filesystem booted
//! with systemd as pid 1 in qemu (`scripts/sysvm/vm`), where `scripts/sysvm/payload`
//! installs the binary under test with the repository's own `scripts/install.sh` (so the unit
//! tested is `packaging/systemd/lxcfs-rs.service`) and disturbs the service four ways while
//! readers in a private mount namespace read its files bound over their `/proc`, as a
//! container's are: `systemctl restart`, `systemctl reload`, `kill -9` of the MainPID, and
//! `systemctl stop` then `start`.
//!
//! What the service is to promise once the daemon keeps its connection through systemd (the
//! unit with `FileDescriptorStoreMax=64`, `ExecReload=/bin/kill -USR1 $MAINPID` and
//! `RestartSec=100ms`; the daemon pushing its `/dev/fuse` descriptors to the fd store and
//! adopting them from `LISTEN_FDS`, and re-executing itself with them on SIGUSR1): restart,
//! reload and a crash keep the FUSE connection, so containers' reads never fail and wait
//! under 2 s, and the mount keeps its device number. (Until then restart and kill -9 fail
//! here: each ends the connection.) A stop ends the connection: reads
//! fail with ENOTCONN until the start, and the start serves a fresh mount and re-binds the
//! readers' dead binds, so the looping reader reads again (the one holding a descriptor open
//! on the dead connection cannot).
//!
//! Needs only Debian packages and root (debootstrap); when they cannot be had the tests skip,
//! or fail when CI is set. One boot serves every test of this file; `cargo test --test
//! systemd_vm -- --nocapture` prints the measurements. `vm.rs` boots the VM; `summary.rs`
//! reads the payload's summary.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod summary;
mod vm;

use summary::Record;
use vm::{Vm, vm};

/// The longest a reader may wait for a read across a restart, a reload or a crash.
const MAX_STALL_MS: u64 = 2000;

#[test]
fn the_service_is_installed_and_every_step_runs() {
    let Some(vm) = vm() else { return };
    let install = vm.summary.all("install").next().map(|r| r.get("rc"));
    assert_eq!(
        install,
        Some("0"),
        "scripts/install.sh --binary should install and start the service; its output:\n{}\n--- journal ---\n{}",
        vm.text("install.log"),
        vm.text("journal")
    );
    for step in ["restart", "reload", "kill", "stop-start"] {
        assert!(
            vm.summary.of("step", step).is_some(),
            "the payload did not run step {step}; its summary:\n{}",
            vm.text("summary")
        );
    }
}

#[test]
fn restart_keeps_every_read() {
    let Some(vm) = vm() else { return };
    assert_seamless(vm, "restart", "systemctl restart lxcfs-rs", false);
}

#[test]
fn reload_keeps_every_read() {
    let Some(vm) = vm() else { return };
    assert_seamless(
        vm,
        "reload",
        "systemctl reload lxcfs-rs (the unit's ExecReload=)",
        false,
    );
}

/// On a kernel without FUSE_NOTIFY_RESEND (before 6.9: Debian 12's 6.1, the default) the
/// reads in flight when the service is killed fail with ECONNABORTED, as the README's kernel
/// matrix says; every other read pauses. `SYSVM_KERNEL=linux-image-6.12-amd64` boots a kernel
/// with it, where none may fail.
#[test]
fn kill_9_of_the_main_pid_keeps_every_read() {
    let Some(vm) = vm() else { return };
    let resend = kernel_has_resend(vm);
    let what = format!(
        "kill -9 of the MainPID, then systemd's Restart= (kernel {}: {})",
        kernel(vm),
        if resend {
            "FUSE_NOTIFY_RESEND, no read may fail"
        } else {
            "no FUSE_NOTIFY_RESEND, a read in flight may fail with ECONNABORTED"
        }
    );
    assert_seamless(vm, "kill", &what, !resend);
    let step = step(vm, "kill");
    assert_ne!(
        step.get("pid_after"),
        step.get("pid_before"),
        "systemd should have started a new main process after kill -9; {}",
        vm.context("kill")
    );
}

#[test]
fn stop_fails_reads_with_enotconn_until_start_serves_and_reattaches() {
    let Some(vm) = vm() else { return };
    let name = "stop-start";
    let step = step(vm, name);
    let mut problems = Vec::new();
    if step.get("rc") != "0,0" {
        problems.push(format!(
            "systemctl stop and start should both exit 0 (rc=stop,start is {})",
            step.get("rc")
        ));
    }
    if step.get("active") != "yes" {
        problems.push("the service did not become active again after the start".to_string());
    }
    for r in reads(vm, name) {
        let what = format!("{} reader, {}", r.get("reader"), r.get("phase"));
        match r.get("phase") {
            "before" if r.num("failed") > 0 => {
                problems.push(format!("{what}: reads failed before the stop"))
            }
            // Between the stop and the start the connection is gone, and ENOTCONN
            // ("Transport endpoint is not connected") says so. The one exception is the
            // kernel's: when the daemon lets go of /dev/fuse, fuse_abort_conn() fails the
            // requests still queued or being answered with ECONNABORTED (only later ones get
            // ENOTCONN), and a reader has at most one request in flight.
            "stopping" | "stopped" | "starting" => {
                for (errno, call, n) in r.errors() {
                    let in_flight = r.get("phase") == "stopping" && errno == "ECONNABORTED";
                    if errno != "ENOTCONN" && !(in_flight && n == 1) {
                        problems.push(format!("{what}: {n} x {errno} from {call}, not ENOTCONN"));
                    }
                }
            }
            _ => {}
        }
        // While stopped no daemon serves: a read that succeeded then was served by something
        // else (a daemon the stop left behind).
        if r.get("phase") == "stopped" && r.num("failed") < r.num("ops") {
            problems.push(format!(
                "{what}: {} of {} reads succeeded while the service was stopped",
                r.num("ops") - r.num("failed"),
                r.num("ops")
            ));
        }
    }
    let fresh = one(vm, "fresh", name).get("result");
    if fresh != "OK" {
        problems.push(format!(
            "after the start, a new open of /var/lib/lxcfs/proc/meminfo should read ({fresh})"
        ));
    }
    // After the start the daemon re-binds the readers' dead binds (src/reattach): new opens
    // through them read again; a descriptor held open on the dead connection stays dead.
    let healed = reads(vm, name)
        .into_iter()
        .find(|r| r.get("reader") == "loop" && r.get("phase") == "after");
    match healed {
        Some(r) if r.num("failed") < r.num("ops") => {}
        Some(r) => problems.push(format!(
            "after the start, the loop reader bound before the stop never read again: {} of {} \
             reads failed ({})",
            r.num("failed"),
            r.num("ops"),
            r.get("errors")
        )),
        None => problems.push("no loop reader record after the start".to_string()),
    }
    for r in vm.summary.reads(name) {
        if r.get("phase") == "after" {
            eprintln!(
                "stop-start: after the start, the {} reader bound before the stop: {} of {} reads failed ({}); mount {} -> {}",
                r.get("reader"),
                r.num("failed"),
                r.num("ops"),
                r.get("errors"),
                step.get("dev_before"),
                step.get("dev_after")
            );
        }
    }
    assert!(
        problems.is_empty(),
        "systemctl stop, then start:\n- {}\n{}",
        problems.join("\n- "),
        vm.context(name)
    );
}

/// The `reads` records of step `name`, both readers' phases; a panic when a reader has
/// none (the readers did not start: the failures file says what they logged).
fn reads<'a>(vm: &'a Vm, name: &str) -> Vec<&'a Record> {
    let reads = vm.summary.reads(name);
    for reader in ["loop", "hold"] {
        assert!(
            reads.iter().any(|r| r.get("reader") == reader),
            "step {name}: no reads of the {reader} reader (the readers did not start?)\n{}",
            vm.context(name)
        );
    }
    reads
}

/// The `step` record of `name`; a panic when the payload wrote none.
fn step<'a>(vm: &'a Vm, name: &str) -> &'a Record {
    one(vm, "step", name)
}

/// The record of `kind` about step `name`; a panic when the payload wrote none.
fn one<'a>(vm: &'a Vm, kind: &str, name: &str) -> &'a Record {
    vm.summary.of(kind, name).unwrap_or_else(|| {
        panic!(
            "the payload wrote no {kind} record for step {name}; its summary:\n{}\n--- install.log ---\n{}",
            vm.text("summary"),
            vm.text("install.log")
        )
    })
}

/// The VM kernel's release (`uname -r`).
fn kernel(vm: &Vm) -> &str {
    vm.summary
        .all("system")
        .next()
        .expect("the payload's summary has a system record")
        .get("kernel")
}

/// Whether the VM's kernel has FUSE_NOTIFY_RESEND: Linux 6.9 and later.
fn kernel_has_resend(vm: &Vm) -> bool {
    let release = kernel(vm);
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    version >= (6, 9)
}

/// What a restart, a reload and a crash must keep: the command succeeded and the service is
/// active again, no reader's read failed in any phase (with `in_flight_may_fail`, each reader
/// may have had one fail with ECONNABORTED: the read in flight when the service died, on a
/// kernel that cannot resend it), none waited 2 s or more, the mount kept its device number
/// (read from mountinfo: `stat` of a dead FUSE mount fails), no reader was left hanging, and
/// a new open reads.
fn assert_seamless(vm: &Vm, name: &str, what: &str, in_flight_may_fail: bool) {
    let step = step(vm, name);
    let mut problems = Vec::new();
    let mut aborted = std::collections::BTreeMap::<&str, u64>::new();
    if step.get("rc") != "0" {
        problems.push(format!("the command failed (rc={})", step.get("rc")));
    }
    if step.get("active") != "yes" {
        problems.push("the service did not become active again within 30 s".to_string());
    }
    for r in reads(vm, name) {
        let who = format!("{} reader, {}", r.get("reader"), r.get("phase"));
        let excused: u64 = if in_flight_may_fail {
            let n = r
                .errors()
                .iter()
                .filter(|(errno, _, _)| errno == "ECONNABORTED")
                .map(|(_, _, n)| n)
                .sum();
            *aborted.entry(r.get("reader")).or_default() += n;
            n
        } else {
            0
        };
        if r.num("failed") > excused {
            problems.push(format!(
                "{who}: {} of {} reads failed ({})",
                r.num("failed"),
                r.num("ops"),
                r.get("errors")
            ));
        }
        // stall: the longest read; outage: the longest time between successful reads,
        // which also catches a read that never returned.
        for key in ["stall_ms", "outage_ms"] {
            if r.num(key) >= MAX_STALL_MS {
                problems.push(format!(
                    "{who}: {key}={} (at most {MAX_STALL_MS})",
                    r.num(key)
                ));
            }
        }
    }
    for (reader, n) in aborted {
        if n > 1 {
            problems.push(format!(
                "{reader} reader: {n} reads failed with ECONNABORTED; it has one read in flight at a time"
            ));
        }
    }
    if step.get("dev_after") != step.get("dev_before") {
        problems.push(format!(
            "the mount at /var/lib/lxcfs changed from {} to {}: a new connection, so every bind of the old one is dead",
            step.get("dev_before"),
            step.get("dev_after")
        ));
    }
    if one(vm, "readers", name).get("stopped") == "stuck" {
        problems.push("a reader was still hanging in a read after SIGKILL".to_string());
    }
    let fresh = one(vm, "fresh", name).get("result");
    if fresh != "OK" {
        problems.push(format!(
            "a new open of the mount afterwards failed ({fresh})"
        ));
    }
    assert!(
        problems.is_empty(),
        "{what}:\n- {}\n{}",
        problems.join("\n- "),
        vm.context(name)
    );
}
