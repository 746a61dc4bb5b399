//! The load average of one cgroup: the state the load tracker keeps per cgroup, and the
//! kernel's rule for folding in a sample.
//!
//! The same fixed-point arithmetic as `kernel/sched/loadavg.c`, so a container's numbers
//! rise and decay exactly as a VM's would under the same load.

/// Bits of fraction in the fixed-point load.
pub(crate) const FSHIFT: u32 = 11;
/// 1.0 in fixed point.
pub(crate) const FIXED_1: u64 = 1 << FSHIFT;
/// Per-5-second decay factors for the 1, 5 and 15 minute averages: `FIXED_1 / exp(5s/1min)`
/// and so on.
const EXP: [u64; 3] = [1884, 2014, 2037];

/// Exponentially decayed load of one cgroup, sampled every 5 s by the caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadAvg {
    /// The 1, 5 and 15 minute averages in fixed point (`FIXED_1` = 1.0), as the kernel's
    /// `avenrun`.
    pub avenrun: [u64; 3],
}

impl LoadAvg {
    /// Folds in one sample of `active_tasks` (tasks in state R or D), as the kernel's
    /// `calc_global_load` does every `LOAD_FREQ`.
    pub fn sample(&mut self, active_tasks: u64) {
        let active = active_tasks.saturating_mul(FIXED_1);
        for (load, exp) in self.avenrun.iter_mut().zip(EXP) {
            *load = calc_load(*load, exp, active);
        }
    }
}

/// The kernel's `calc_load`, including the rounding up newer kernels do while the load
/// rises (`active >= load`), which lets it reach a steady integer load instead of stalling
/// just below it. Computed in 128 bits so no input overflows.
fn calc_load(load: u64, exp: u64, active: u64) -> u64 {
    let (load, exp, active) = (u128::from(load), u128::from(exp), u128::from(active));
    let fixed_1 = u128::from(FIXED_1);
    let mut new = load * exp + active * (fixed_1 - exp);
    if active >= load {
        new += fixed_1 - 1;
    }
    u64::try_from(new / fixed_1).unwrap_or(u64::MAX)
}
