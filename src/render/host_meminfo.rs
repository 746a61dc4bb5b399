//! Values read out of the host's `/proc/meminfo` text, for the meminfo and swap rules.

use super::text::split_key;
use crate::model::MemoryLimits;

/// A `Key:   value rest` line cut where a rewrite needs it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ValueLine<'a> {
    /// `Key` without the colon.
    pub(crate) key: &'a str,
    /// Byte length of the line up to and including the colon.
    pub(crate) head_len: usize,
    /// Byte length of the line up to the end of the value's digits.
    pub(crate) end: usize,
    /// The value's digits.
    pub(crate) digits: &'a str,
    /// The value.
    pub(crate) value: u64,
}

/// Parses one meminfo line (no line ending); `None` for a line with no numeric value.
pub(crate) fn parse_value_line(body: &str) -> Option<ValueLine<'_>> {
    let (key, after) = split_key(body)?;
    let head_len = body.len() - after.len();
    let rest = after.trim_start_matches([' ', '\t']);
    let start = body.len() - rest.len();
    let n = rest.bytes().take_while(u8::is_ascii_digit).count();
    let digits = &rest[..n];
    let value = digits.parse().ok()?;
    Some(ValueLine {
        key,
        head_len,
        end: start + n,
        digits,
        value,
    })
}

/// The value of `key` in meminfo-style text (in the file's own unit, kB for meminfo).
pub(crate) fn host_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .filter_map(parse_value_line)
        .find(|l| l.key == key)
        .map(|l| l.value)
}

/// Bytes to kB, as the kernel truncates.
pub(crate) fn kb(bytes: u64) -> u64 {
    bytes / 1024
}

/// The limit (kB) that replaces MemTotal: the cgroup's, capped at the host's MemTotal;
/// `None` when none is set or it is under 1 kB (MemTotal 0 makes `ps` die of SIGFPE).
pub(crate) fn limit_kb(host_meminfo: &str, mem: &MemoryLimits) -> Option<u64> {
    mem.limit
        .map(|b| host_kb(host_meminfo, "MemTotal").map_or(kb(b), |t| kb(b).min(t)))
        .filter(|&l| l > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_value_lines() {
        let l = parse_value_line("MemTotal:       24684084 kB").expect("line");
        assert_eq!(
            (l.key, l.head_len, l.end, l.digits, l.value),
            ("MemTotal", 9, 24, "24684084", 24684084)
        );
        assert_eq!(
            parse_value_line("HugePages_Total:       0").map(|l| l.value),
            Some(0)
        );
        assert_eq!(parse_value_line("power management:"), None);
        assert_eq!(parse_value_line("no colon 5"), None);
    }

    #[test]
    fn limits_are_capped_at_the_host_and_sub_kb_limits_ignored() {
        let host = "MemTotal:        2048 kB\n";
        let mem = |limit| MemoryLimits {
            limit,
            ..MemoryLimits::default()
        };
        assert_eq!(limit_kb(host, &mem(Some(1024 * 1024))), Some(1024));
        assert_eq!(limit_kb(host, &mem(Some(1 << 40))), Some(2048));
        assert_eq!(limit_kb(host, &mem(Some(1023))), None);
        assert_eq!(limit_kb(host, &mem(None)), None);
        assert_eq!(
            limit_kb("", &mem(Some(4096))),
            Some(4),
            "no host MemTotal: uncapped"
        );
        assert_eq!(host_kb(host, "MemTotal"), Some(2048));
        assert_eq!(host_kb(host, "MemFree"), None);
    }
}
