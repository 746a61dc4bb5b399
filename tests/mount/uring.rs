//! `--io-uring`: FUSE-over-io_uring when the kernel offers it, `/dev/fuse` when it does not,
//! and a ring the kernel refuses for a while (its module parameter turned off) answering
//! again once it is back. Each test turns the host-wide parameter on for itself and puts it
//! back as found after its daemon unmounted; the tests take turns.

use std::fs;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common::*;

const PARAM: &str = "/sys/module/fuse/parameters/enable_uring";

/// One test at a time sets the parameter.
static TURNS: Mutex<()> = Mutex::new(());

/// The parameter set to `on` for the guard's life, then put back as found.
struct Param {
    found: String,
}

impl Param {
    fn set(on: bool) -> Param {
        let found = fs::read_to_string(PARAM).expect(PARAM).trim().to_string();
        fs::write(PARAM, if on { "1" } else { "0" }).unwrap_or_else(|e| panic!("{PARAM}: {e}"));
        Param { found }
    }
}

impl Drop for Param {
    fn drop(&mut self) {
        let _ = fs::write(PARAM, &self.found);
    }
}

/// False (with a reason, a failure in CI) on a kernel without FUSE-over-io_uring.
fn kernel_has_uring() -> bool {
    if Path::new(PARAM).exists() {
        return true;
    }
    skip("the kernel has no FUSE-over-io_uring (no /sys/module/fuse/parameters/enable_uring)");
    false
}

/// `taskset -c CPU cat PATH`'s output; panics when it fails.
fn cat_on(cpu: &str, path: &Path) -> String {
    let out = std::process::Command::new("taskset")
        .args(["-c", cpu, "cat"])
        .arg(path)
        .output()
        .expect("running taskset");
    assert!(
        out.status.success(),
        "cat {} on CPU {cpu}: {out:?}",
        path.display()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// True (saying so) under `scripts/test --io-uring`: turning the parameter off would stall
/// every other test's daemon, which serves over io_uring too.
fn whole_suite_over_uring() -> bool {
    let set = std::env::var_os(IO_URING_ENV).is_some();
    if set {
        eprintln!("not run under scripts/test --io-uring: it turns enable_uring off for a while");
    }
    set
}

/// The names of the daemon's worker's threads.
fn worker_threads(d: &Daemon) -> Vec<String> {
    let worker = d.status()["worker_pid"].as_u64().expect("a worker");
    let mut names: Vec<String> = fs::read_dir(format!("/proc/{worker}/task"))
        .expect("the worker's threads")
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn io_uring_serves_each_readers_view_from_every_cpu() {
    require!(mount);
    require!(cpus_0_and_1);
    if !kernel_has_uring() {
        return;
    }
    let _turn = TURNS.lock().unwrap_or_else(|e| e.into_inner());
    let _param = Param::set(true);
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB);
    // Declared after the guard, so it unmounts before the parameter is put back.
    let d = Daemon::start(&["--io-uring"]);
    assert_eq!(
        d.status()["transport"],
        "io_uring",
        "status: {}",
        d.status()
    );
    assert_eq!(
        d.status()["resend"],
        false,
        "ring requests are not resent: {}",
        d.status()
    );
    let rings = worker_threads(&d)
        .into_iter()
        .filter(|n| n.starts_with("fuse-ring-"))
        .count();
    assert!(
        rings >= 2,
        "one ring thread per possible CPU: {:?}",
        worker_threads(&d)
    );
    // A request goes to the queue of the reader's CPU: read from each.
    for cpu in ["0", "1"] {
        for _ in 0..20 {
            let meminfo = cg.run(&[
                "taskset",
                "-c",
                cpu,
                "cat",
                d.path("proc/meminfo").to_str().unwrap(),
            ]);
            assert_eq!(kb(&meminfo, "MemTotal"), 262144, "on CPU {cpu}:\n{meminfo}");
        }
        let stat = cg.run(&[
            "taskset",
            "-c",
            cpu,
            "cat",
            d.path("proc/stat").to_str().unwrap(),
        ]);
        assert!(stat.starts_with("cpu "), "on CPU {cpu}:\n{stat}");
        // Directory listings and lookups go the same way.
        let ls = cg.run(&[
            "taskset",
            "-c",
            cpu,
            "ls",
            d.path("sys/devices/system/cpu").to_str().unwrap(),
        ]);
        assert!(ls.lines().any(|l| l == "online"), "on CPU {cpu}:\n{ls}");
    }
    let host_reader = fs::read_to_string(d.path("proc/meminfo")).unwrap();
    assert_ne!(
        kb(&host_reader, "MemTotal"),
        262144,
        "the host's own view:\n{host_reader}"
    );
}

#[test]
fn without_the_kernels_offer_io_uring_falls_back_to_dev_fuse() {
    require!(mount);
    if !kernel_has_uring() || whole_suite_over_uring() {
        return;
    }
    let _turn = TURNS.lock().unwrap_or_else(|e| e.into_inner());
    let _param = Param::set(false);
    let d = Daemon::start(&["--io-uring"]);
    assert_eq!(
        d.status()["transport"],
        "/dev/fuse",
        "status: {}",
        d.status()
    );
    assert!(
        !worker_threads(&d)
            .iter()
            .any(|n| n.starts_with("fuse-ring-")),
        "no ring threads: {:?}",
        worker_threads(&d)
    );
    let meminfo = fs::read_to_string(d.path("proc/meminfo")).unwrap();
    assert!(meminfo.starts_with("MemTotal:"), "{meminfo}");
}

#[test]
fn a_ring_refused_for_a_while_answers_once_the_parameter_is_back() {
    require!(mount);
    require!(cpus_0_and_1);
    if !kernel_has_uring() || whole_suite_over_uring() {
        return;
    }
    let _turn = TURNS.lock().unwrap_or_else(|e| e.into_inner());
    let param = Param::set(true);
    let d = Daemon::start(&["--io-uring"]);
    assert_eq!(d.status()["transport"], "io_uring");
    // Warm both queues, then turn the parameter off under them: the kernel refuses the
    // commits, and the entries' replies wait in them until it is back on.
    for cpu in ["0", "1"] {
        cat_on(cpu, &d.path("proc/uptime"));
    }
    fs::write(PARAM, "0").unwrap();
    let back_on = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(2));
        fs::write(PARAM, "1").unwrap();
    });
    let started = Instant::now();
    for cpu in ["0", "1"] {
        let out = cat_on(cpu, &d.path("proc/meminfo"));
        assert!(out.starts_with("MemTotal:"), "on CPU {cpu}:\n{out}");
    }
    back_on.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    let log = d.log();
    assert!(
        log.contains("the kernel refuses the ring") && log.contains("takes the ring again"),
        "the refusal and the recovery are logged:\n{log}"
    );
    drop(d);
    drop(param);
}

/// Our daemon over io_uring with failpoints `spec`, without core dumps (a `crash:` aborts
/// the worker).
fn uring_daemon_with_failpoints(spec: &str) -> Daemon {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(BIN);
    cmd.env("LXCFS_RS_FAILPOINTS", spec);
    // SAFETY: setrlimit is async-signal-safe and touches nothing of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0)
                .map_err(std::io::Error::from)
        });
    }
    Daemon::start_cmd(cmd, &["--io-uring"])
}

/// The kernel (6.18) never resends what sat in a ring entry of a worker that died; the next
/// worker maps the same entry buffers at the same address (the board's arena) and answers
/// it: a READ held by the `hang:` failpoint when the worker is SIGKILLed returns whole, and
/// a READ that crashes every worker it reaches (`crash:`) is answered EIO on its third
/// delivery, as the kernel's resend makes it over /dev/fuse.
#[test]
fn what_a_dead_worker_left_in_its_ring_is_answered_by_the_next() {
    require!(mount);
    if !cfg!(debug_assertions) {
        skip("the daemon's failpoints exist in debug builds only (run without --release)");
        return;
    }
    if !kernel_has_uring() {
        return;
    }
    let _turn = TURNS.lock().unwrap_or_else(|e| e.into_inner());
    let _param = Param::set(true);
    let d = uring_daemon_with_failpoints("hang:proc/loadavg,crash:proc/uptime");
    assert_eq!(
        d.status()["transport"],
        "io_uring",
        "status: {}",
        d.status()
    );

    let path = d.path("proc/loadavg");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(fs::read_to_string(&path));
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "the hang:proc/loadavg failpoint should hold the READ"
    );
    let first = d.worker_pid();
    signal(first, nix::sys::signal::Signal::SIGKILL);
    let held = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the READ the killed worker held was never answered");
    let held = held.expect("the READ the killed worker held failed");
    assert_eq!(
        held.split_whitespace().count(),
        5,
        "a whole loadavg: {held:?}"
    );
    assert_ne!(d.worker_pid(), first, "a new worker serves");
    assert!(
        d.log()
            .contains("left unanswered in ring entries by the previous worker"),
        "the next worker says it answers what was left:\n{}",
        d.log()
    );

    let restarts = d.status()["worker_restarts"].as_u64().unwrap();
    let err = fs::read(d.path("proc/uptime")).expect_err("a poison pill cannot be served");
    assert_eq!(
        err.raw_os_error(),
        Some(nix::libc::EIO),
        "answered EIO after crashing two workers: {err}\n{}",
        d.log()
    );
    assert_eq!(
        d.status()["worker_restarts"].as_u64().unwrap(),
        restarts + 2,
        "two workers died of it: {}",
        d.status()
    );
    let meminfo = fs::read_to_string(d.path("proc/meminfo")).expect("the mount serves on");
    assert!(meminfo.starts_with("MemTotal:"), "{meminfo}");
}
