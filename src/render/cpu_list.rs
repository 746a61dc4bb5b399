//! `sys/devices/system/cpu/{online,possible,present,offline}`: the CPUs a reader is shown,
//! as the kernel's range list (`docs/semantics.md#proc-cpuinfo`).

use crate::cpulist;

/// `online`, `possible` and `present`: the shown CPUs (host ids) as a range list and a
/// newline. Under the CPU-quota view they are numbered from 0, as cpuinfo and stat number
/// them (`renumbered`), since the quota picks how many CPUs, not which.
pub fn render(shown: &[u32], renumbered: bool) -> String {
    let list = if renumbered {
        let count = u32::try_from(shown.len()).unwrap_or(u32::MAX);
        cpulist::format(&(0..count).collect::<Vec<_>>())
    } else {
        cpulist::format(shown)
    };
    format!("{list}\n")
}

/// `offline`: always empty, as no hidden CPU is "offline" from the reader's view.
pub fn render_offline() -> String {
    "\n".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ids_or_renumbered() {
        assert_eq!(render(&[1, 2, 3, 6], false), "1-3,6\n");
        assert_eq!(render(&[1, 2, 3, 6], true), "0-3\n");
        assert_eq!(render(&[5], true), "0\n");
        assert_eq!(render_offline(), "\n");
    }
}
