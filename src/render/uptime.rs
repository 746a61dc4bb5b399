//! `/proc/uptime`: the container's age and the idle time of its CPUs
//! (`docs/semantics.md#proc-uptime`).

/// `"<age> <idle>\n"` with two decimals, truncated as the kernel's `uptime_proc_show`
/// prints them (it divides nanoseconds, it does not round).
///
/// idle = max(0, age × `cpus` − `busy_secs`), summed over CPUs as the kernel does; an unknown
/// `busy_secs` counts the CPUs as fully idle. An age that is negative, NaN or infinite (a
/// clock read gone wrong) shows as 0.00 rather than as nonsense.
pub fn render(age_secs: f64, cpus: usize, busy_secs: Option<f64>) -> String {
    let age = sane(age_secs);
    let busy = busy_secs.map_or(0.0, sane);
    let idle = (age * cpus as f64 - busy).max(0.0);
    format!("{} {}\n", two_decimals(age), two_decimals(idle))
}

/// `x` if it is a finite, non-negative number of seconds, else 0.
fn sane(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 { x } else { 0.0 }
}

/// `x` (finite, non-negative) as `s.cc`, truncated to hundredths. A millionth of a
/// hundredth is added first so that a value like 325.88, stored as 325.879999…, does not
/// print as 325.87.
fn two_decimals(x: f64) -> String {
    // `as` saturates, so an absurdly large value cannot wrap.
    let hundredths = (x * 100.0 + 1e-6).floor() as u64;
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_two_truncated_decimals() {
        assert_eq!(render(325.88, 2, Some(105.0)), "325.88 546.76\n");
        assert_eq!(render(12.349, 1, None), "12.34 12.34\n");
        assert_eq!(render(0.999, 1, Some(0.0)), "0.99 0.99\n");
        assert_eq!(render(100.0, 1, Some(99.995)), "100.00 0.00\n");
        assert_eq!(render(3600.1, 4, None), "3600.10 14400.40\n");
    }

    #[test]
    fn idle_is_never_negative() {
        assert_eq!(render(10.0, 2, Some(25.0)), "10.00 0.00\n");
        assert_eq!(render(10.0, 0, Some(1.0)), "10.00 0.00\n");
    }

    #[test]
    fn bad_ages_show_zero() {
        assert_eq!(render(-5.0, 2, Some(1.0)), "0.00 0.00\n");
        assert_eq!(render(f64::NAN, 2, None), "0.00 0.00\n");
        assert_eq!(render(f64::INFINITY, 2, None), "0.00 0.00\n");
        assert_eq!(render(10.0, 1, Some(f64::NAN)), "10.00 10.00\n");
        assert_eq!(render(10.0, 1, Some(-3.0)), "10.00 10.00\n");
    }

    #[test]
    fn huge_values_do_not_wrap() {
        let out = render(1e300, usize::MAX, None);
        assert!(out.starts_with(&format!("{}.", u64::MAX / 100)), "{out}");
    }
}
