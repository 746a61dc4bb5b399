//! The reader's cgroup's threads as `proc/stat` (`procs_running`, `procs_blocked`) and, with
//! `-l`, `proc/loadavg` (`running/total`) count them: busy loops counted as running, a
//! thousand sleeping threads as neither, and a count no older than the daemon keeps one
//! (half a second).

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::common::*;

/// Longer than the daemon keeps a cgroup's task count (`cgroup::FRESH_FOR`, 500 ms).
const PAST_FRESH: Duration = Duration::from_millis(1200);

/// A shell loop that never makes a system call: always in state R.
const BUSY: &[&str] = &["sh", "-c", "while :; do :; done"];

/// `procs_running` and `procs_blocked` of a `proc/stat` text.
fn procs(stat: &str) -> (u64, u64) {
    let value = |key: &str| -> u64 {
        line_starting(stat, key)
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} line in:\n{stat}"))
    };
    (value("procs_running "), value("procs_blocked "))
}

/// `procs_running`/`procs_blocked` and loadavg's `running`/`total`, as a reader in `cg` (its
/// `cat`, which sleeps waiting for the daemon while the cgroup is counted) reads them.
fn counts(cg: &Cgroup, d: &Daemon) -> ((u64, u64), (u64, u64)) {
    let stat = cg.read(&d.path("proc/stat"));
    let loadavg = cg.read(&d.path("proc/loadavg"));
    let load = parse_loadavg(&loadavg).unwrap_or_else(|e| panic!("{e}"));
    (procs(&stat), (load.running, load.total))
}

/// Threads in `cg` (its cpu hierarchy's `tasks`).
fn threads(cg: &Cgroup) -> u64 {
    cg.read_file("cpu", "tasks").lines().count() as u64
}

#[test]
fn busy_loops_are_counted_running_and_stop_counting_once_killed() {
    require!(mount);
    let cg = Cgroup::new();
    let d = Daemon::start(&["-l"]);
    let busy: Vec<u32> = (0..3).map(|_| cg.spawn(BUSY)).collect();
    let ((running, blocked), (load_running, total)) = counts(&cg, &d);
    assert_eq!(
        running, 3,
        "three busy loops, the reader asleep waiting for us"
    );
    assert_eq!(blocked, 0);
    assert_eq!(load_running, 3, "loadavg's running");
    assert_eq!(total, 4, "the loops and the reader");

    for pid in busy {
        signal(pid, Signal::SIGKILL);
    }
    assert!(
        wait_until(Duration::from_secs(5), || threads(&cg) == 0),
        "the killed loops left the cgroup"
    );
    std::thread::sleep(PAST_FRESH);
    let ((running, blocked), (load_running, total)) = counts(&cg, &d);
    assert_eq!(
        (running, blocked, load_running, total),
        (0, 0, 0, 1),
        "counted again once the kept count is older than half a second: the reader alone"
    );
}

/// Starts a thousand threads that sleep, and prints `ready`.
const SLEEPERS: &str = r#"
import threading, time
threading.stack_size(64 * 1024)
for _ in range(1000):
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
print("ready", flush=True)
time.sleep(3600)
"#;

#[test]
fn a_thousand_sleeping_threads_are_neither_running_nor_blocked() {
    require!(mount);
    require!(program "python3", "python3 starts the threads (scripts/deps.sh installs it)");
    let cg = Cgroup::new();
    let d = Daemon::start(&["-l"]);
    cg.spawn(&["python3", "-c", SLEEPERS]);
    assert!(
        wait_until(Duration::from_secs(60), || threads(&cg) == 1001),
        "1,000 threads and python's own did not all start within 60 s ({} did)",
        threads(&cg)
    );
    // Let the last ones get to their sleep.
    std::thread::sleep(Duration::from_millis(200));
    cg.spawn(BUSY);
    let ((running, blocked), (load_running, total)) = counts(&cg, &d);
    assert_eq!(
        (running, blocked),
        (1, 0),
        "the busy loop alone is running; the sleepers sleep"
    );
    assert_eq!(load_running, 1);
    assert_eq!(total, 1003, "1,001 python threads, the loop and the reader");
}

#[test]
fn a_cgroup_made_again_under_the_same_path_is_counted_afresh() {
    require!(mount);
    let parent = Cgroup::new();
    let d = Daemon::start(&[]);
    // The count of the first cgroup is kept for half a second, and must not be the second's:
    // tried until the removal and the second read fall within that half second.
    for _ in 0..5 {
        let first = parent.child("again");
        first.spawn(BUSY);
        let read = Instant::now();
        assert_eq!(procs(&first.read(&d.path("proc/stat"))), (1, 0));
        drop(first);
        let second = parent.child("again");
        let (running, _) = procs(&second.read(&d.path("proc/stat")));
        if read.elapsed() < Duration::from_millis(400) {
            assert_eq!(
                running, 0,
                "a new cgroup at the path of one with a busy loop counted half a second \
                 before: its own count, not the removed one's"
            );
            return;
        }
    }
    skip("the machine never removed and made a cgroup within 400 ms; nothing was checked");
}
