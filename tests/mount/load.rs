//! `proc/loadavg` values with `-l`: a busy cgroup's load rises tick by tick as the kernel's
//! own would under the same load, while an idle cgroup read from the same mount stays idle.

use std::time::{Duration, Instant};

use crate::common::*;

/// The kernel's sampling period (`LOAD_FREQ`), which the daemon's sampler sleeps between
/// ticks: no two ticks are closer than this.
const TICK: Duration = Duration::from_secs(5);
/// The longest a tick may take to come, for counting the ticks that surely fell in a
/// window: the sampler sleeps [`TICK`], then wakes and samples, which takes milliseconds
/// even with both CPUs busy; half a second is a hundred times that.
const SLOWEST_TICK: Duration = Duration::from_millis(5500);
/// How long the busy loops run after the first read: three ticks even at [`SLOWEST_TICK`],
/// so four samples in all, the fewest that take two tasks' 1-minute load to 0.5.
const BUSY_FOR: Duration = Duration::from_millis(16_600);

/// The three loads the kernel prints after one tick per number of active tasks in
/// `ticks`, starting from 0: `calc_load` of `kernel/sched/loadavg.c` (fixed point, 11 bits,
/// decay factors 1884, 2014, 2037, rounding up while the load rises), printed as
/// `loadavg_proc_show` does (`FIXED_1/200` added, two truncated decimals).
///
/// Written out here on its own so that the daemon's arithmetic is checked, not reused.
fn kernel_loads(ticks: &[u64]) -> [f64; 3] {
    const FIXED_1: u64 = 2048;
    let mut avenrun = [0u64; 3];
    for &n in ticks {
        let active = n * FIXED_1;
        for (load, exp) in avenrun.iter_mut().zip([1884u64, 2014, 2037]) {
            let up = if active >= *load { FIXED_1 - 1 } else { 0 };
            *load = (*load * exp + active * (FIXED_1 - exp) + up) / FIXED_1;
        }
    }
    avenrun.map(|a| {
        let x = a + FIXED_1 / 200;
        let (int, frac) = (x >> 11, ((x & (FIXED_1 - 1)) * 100) >> 11);
        int as f64 + frac as f64 / 100.0
    })
}

/// Whether each of `read`'s three loads lies between `lo`'s and `hi`'s (the printed values,
/// so only float parsing needs the slack).
fn within(read: [f64; 3], lo: [f64; 3], hi: [f64; 3]) -> Result<(), String> {
    for (i, minutes) in [1, 5, 15].iter().enumerate() {
        if read[i] < lo[i] - 0.001 || read[i] > hi[i] + 0.001 {
            return Err(format!(
                "{minutes}-minute load {:.2} not within [{:.2}, {:.2}]",
                read[i], lo[i], hi[i]
            ));
        }
    }
    Ok(())
}

#[test]
fn a_busy_cgroups_load_rises_as_the_kernels_would_and_an_idle_one_stays_idle() {
    require!(mount);
    let busy = Cgroup::new();
    let idle = Cgroup::new();
    for _ in 0..2 {
        busy.spawn(&["sh", "-c", "while :; do :; done"]);
    }
    idle.spawn(&["sleep", "300"]);
    let d = Daemon::start(&["-l"]);
    let path = d.path("proc/loadavg");
    let read = |cg: &Cgroup| {
        let text = cg.read(&path);
        parse_loadavg(&text).unwrap_or_else(|e| panic!("with -l: {e}"))
    };

    // The first read of a cgroup starts tracking it with one sample: the two loops, and
    // perhaps the reader (it waits for our answer while we count, so it rarely counts).
    let t0 = Instant::now();
    let first = read(&busy);
    let first_idle = read(&idle);
    let t1 = Instant::now();
    within(first.loads, kernel_loads(&[2]), kernel_loads(&[3]))
        .unwrap_or_else(|e| panic!("first read of the busy cgroup: {e}; read {first:?}"));
    assert!(
        first.running >= 2,
        "the two busy loops are running: {first:?}"
    );

    std::thread::sleep(BUSY_FOR);
    let t2 = Instant::now();
    let last = read(&busy);
    let last_idle = read(&idle);
    let t3 = Instant::now();

    // Ticks between the first sample (during the first read) and the last read: all of those
    // in the inner window surely, at most one more than fit in the outer one.
    let fewest = ((t2 - t1).as_secs_f64() / SLOWEST_TICK.as_secs_f64()) as usize;
    let most = ((t3 - t0).as_secs_f64() / TICK.as_secs_f64()) as usize + 1;
    assert!(fewest >= 3, "slept {BUSY_FOR:?}, so at least 3 ticks");
    // Every sample counts the two loops, and at most our reader besides.
    let lo = kernel_loads(&vec![2; fewest + 1]);
    let hi = kernel_loads(&vec![3; most + 1]);
    let what = format!(
        "two busy loops for {:.1} s ({fewest} to {most} ticks after the first sample): \
         expected between {lo:?} and {hi:?}; first read {first:?}, last {last:?}",
        (t2 - t1).as_secs_f64()
    );
    within(last.loads, lo, hi).unwrap_or_else(|e| panic!("{e}: {what}"));
    assert!(last.loads[0] >= 0.5, "{what}");
    // A sampler that never ticked would have left the first sample's loads: they must fail.
    assert!(
        within(first.loads, lo, hi).is_err(),
        "the check cannot tell a stuck sampler from a working one: {what}"
    );

    // The idle cgroup: a sleeping task, and the reader, asleep while we count. At most a
    // sample per read could catch a reader not yet waiting, and two such samples of one
    // task give 0.15 at most.
    for (when, la) in [("first", first_idle), ("last", last_idle)] {
        assert!(
            la.loads.iter().all(|l| *l < 0.2),
            "idle cgroup, {when} read: expected loads below 0.2, read {la:?} (busy: {last:?})"
        );
    }
}
