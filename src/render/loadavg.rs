//! `/proc/loadavg`: a cgroup's load average (kept by the load tracker, see
//! `crate::model::LoadAvg`) printed as the kernel prints its own
//! (`docs/semantics.md#proc-loadavg`).

use crate::model::{FIXED_1, FSHIFT, LoadAvg};

/// `"a.aa b.bb c.cc running/total lastpid\n"` as the kernel's `loadavg_proc_show` prints
/// it: each average rounded by adding `FIXED_1/200` (half of 0.01), then its integer part
/// and two truncated decimals.
pub fn render(load: &LoadAvg, running: u64, total: u64, last_pid: u32) -> String {
    let [a, b, c] = load.avenrun.map(two_decimals);
    format!("{a} {b} {c} {running}/{total} {last_pid}\n")
}

/// `LOAD_INT(x).LOAD_FRAC(x)` after the kernel's rounding offset.
fn two_decimals(avenrun: u64) -> String {
    let x = avenrun.saturating_add(FIXED_1 / 200);
    let int = x >> FSHIFT;
    let frac = ((x & (FIXED_1 - 1)) * 100) >> FSHIFT;
    format!("{int}.{frac:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's formula written out on its own, to check `sample` against.
    fn kernel_step(load: u64, exp: u64, n_active: u64) -> u64 {
        let active = n_active * 2048;
        let rounding = if active >= load { 2047 } else { 0 };
        (load * exp + active * (2048 - exp) + rounding) / 2048
    }

    fn sampled(samples: &[u64]) -> LoadAvg {
        let mut l = LoadAvg::default();
        for &n in samples {
            l.sample(n);
        }
        l
    }

    #[test]
    fn one_task_for_a_minute_matches_the_kernel() {
        let l = sampled(&[1; 12]);
        let mut expected = [0u64; 3];
        for _ in 0..12 {
            for (e, exp) in expected.iter_mut().zip([1884, 2014, 2037]) {
                *e = kernel_step(*e, exp, 1);
            }
        }
        assert_eq!(l.avenrun, expected);
        assert_eq!(l.avenrun, [1299, 378, 132]);
        assert_eq!(render(&l, 1, 12, 4144), "0.63 0.18 0.06 1/12 4144\n");
    }

    #[test]
    fn load_decays_when_tasks_stop() {
        let mut samples = vec![1; 12];
        samples.extend([0; 12]);
        let l = sampled(&samples);
        assert_eq!(l.avenrun, [474, 303, 120]);
        assert_eq!(render(&l, 0, 3, 1), "0.23 0.15 0.06 0/3 1\n");
        let idle = sampled(&[0; 1000]);
        assert_eq!(idle, LoadAvg::default());
    }

    #[test]
    fn steady_load_converges_to_the_task_count() {
        let l = sampled(&[3; 60]);
        assert_eq!(l.avenrun, [6110, 3911, 1722]);
        assert_eq!(render(&l, 3, 50, 7), "2.98 1.91 0.84 3/50 7\n");
        // Rounding up while rising lets the 1-minute average reach exactly 3.00.
        let l = sampled(&[3; 1000]);
        assert_eq!(l.avenrun[0], 3 * FIXED_1);
        assert_eq!(render(&l, 0, 0, 0), "3.00 3.00 3.00 0/0 0\n");
    }

    #[test]
    fn formatting_rounds_like_loadavg_proc_show() {
        let show = |x| {
            render(
                &LoadAvg {
                    avenrun: [x, 0, FIXED_1],
                },
                0,
                0,
                0,
            )
        };
        assert_eq!(show(0), "0.00 0.00 1.00 0/0 0\n");
        // 0.995 rounds up to 1.00, 0.994 does not.
        assert_eq!(show(2038), "1.00 0.00 1.00 0/0 0\n");
        assert_eq!(show(2035), "0.99 0.00 1.00 0/0 0\n");
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let mut l = LoadAvg {
            avenrun: [u64::MAX; 3],
        };
        l.sample(u64::MAX);
        let _ = render(&l, u64::MAX, u64::MAX, u32::MAX);
        assert!(l.avenrun.iter().all(|&x| x > 0));
    }
}
