//! Sleeping threads held in the readers' cgroup (`--threads N`): one process of N + 1
//! threads that never run, as a container's idle threads are. What a daemon counts for
//! `proc/stat`'s `procs_running` / `procs_blocked` and `loadavg` grows with them, so this is
//! how that cost is measured.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{ForkResult, Pid, fork};

use crate::cgroup::BenchCgroup;
use crate::reader::{child, reap};

/// How long the threads may take to start, far beyond what starting a thousand takes.
const START: Duration = Duration::from_secs(30);

/// Each sleeping thread's stack: it only parks.
const STACK: usize = 64 * 1024;

/// The process holding the threads; killed and reaped when dropped.
pub struct Sleepers {
    pid: Pid,
}

impl Sleepers {
    /// Starts a process in `cg` with `threads` threads besides its main one, all asleep, and
    /// returns once the cgroup lists them all.
    pub fn start(cg: &BenchCgroup, threads: usize) -> Result<Sleepers, String> {
        // SAFETY: the benchmark is one thread here; the child ends in `_exit` (`child`).
        let pid = match unsafe { fork() } {
            Ok(ForkResult::Child) => child(|| hold(cg, threads)),
            Ok(ForkResult::Parent { child }) => child,
            Err(e) => return Err(format!("fork for the sleeping threads: {e}")),
        };
        let sleepers = Sleepers { pid };
        let end = Instant::now() + START;
        while cg.tasks()? < threads + 1 {
            if Instant::now() >= end {
                return Err(format!(
                    "the {threads} sleeping threads did not all join the cgroup within {START:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(sleepers)
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = reap(self.pid);
    }
}

/// The child: joins the cgroup, starts the threads, and sleeps with them until killed.
fn hold(cg: &BenchCgroup, threads: usize) -> i32 {
    for procs in cg.procs_files() {
        if let Err(e) = std::fs::write(&procs, "0") {
            eprintln!("bench: sleepers: joining {}: {e}", procs.display());
            return 2;
        }
    }
    for _ in 0..threads {
        let spawned = std::thread::Builder::new().stack_size(STACK).spawn(|| {
            loop {
                std::thread::park();
            }
        });
        if let Err(e) = spawned {
            eprintln!("bench: sleepers: starting a thread: {e}");
            return 2;
        }
    }
    loop {
        std::thread::park();
    }
}
