//! Parsing single values out of cgroup files.
//!
//! Kernel files end in `\n`; files written by tools or copied around may end in `\r\n` or carry
//! junk after the number. We take the first whitespace-separated token and require all of it to
//! be the value: `"123\r\n"` and `"123 junk"` are 123, but `"12a"` and `"abc"` are malformed,
//! because a half-parsed token (is `12k` twelve?) is a guess, and a wrong limit is worse than
//! the host value.

/// v1 reports "no limit" as `PAGE_COUNTER_MAX` pages, i.e. the largest i64 rounded down to a
/// page (9223372036854771712 with 4 KiB pages, less with larger pages). Anything at or above
/// 2^62 bytes is no real limit either, whatever the page size.
pub(crate) const V1_UNLIMITED_FLOOR: u64 = 1 << 62;

/// The first token of `text`, splitting at ASCII whitespace and NULs.
pub(crate) fn first_token(text: &str) -> Option<&str> {
    text.split(|c: char| c.is_ascii_whitespace() || c == '\0')
        .find(|t| !t.is_empty())
}

/// An unsigned number: `"123\n"`.
pub(crate) fn parse_u64(text: &str) -> Result<u64, String> {
    let token = first_token(text).ok_or("empty")?;
    token
        .parse()
        .map_err(|_| format!("{token:?} is not a non-negative integer"))
}

/// A signed number: `"-1\n"`.
pub(crate) fn parse_i64(text: &str) -> Result<i64, String> {
    let token = first_token(text).ok_or("empty")?;
    token
        .parse()
        .map_err(|_| format!("{token:?} is not an integer"))
}

/// A v2 limit: a number, or `max` for none.
pub(crate) fn parse_v2_limit(text: &str) -> Result<Option<u64>, String> {
    match first_token(text) {
        Some("max") => Ok(None),
        _ => parse_u64(text).map(Some),
    }
}

/// A v1 limit: a number, where -1 (cpu quota) or the huge "unlimited" value (memory) is none.
pub(crate) fn parse_v1_limit(text: &str) -> Result<Option<u64>, String> {
    // Parse as i128 so that u64 values above i64::MAX (never written by the kernel, but seen
    // in hand-made trees) still read as "unlimited" rather than malformed.
    let token = first_token(text).ok_or("empty")?;
    let n: i128 = token
        .parse()
        .map_err(|_| format!("{token:?} is not an integer"))?;
    Ok(if n < 0 || n >= i128::from(V1_UNLIMITED_FLOOR) {
        None
    } else {
        Some(n as u64)
    })
}

/// v2 `cpu.max`: `"<quota> <period>"`, with quota `max` for none. Returns the quota as a
/// number of CPUs. Public for the benchmarks (no I/O).
pub fn parse_cpu_max(text: &str) -> Result<Option<f64>, String> {
    let mut tokens = text.split_ascii_whitespace();
    let quota = tokens.next().ok_or("empty")?;
    if quota == "max" {
        return Ok(None);
    }
    let quota = parse_u64(quota)?;
    let period = parse_u64(tokens.next().ok_or("no period after the quota")?)?;
    quota_cpus(quota, period)
}

/// quota / period, refusing a zero period rather than dividing by it.
pub(crate) fn quota_cpus(quota: u64, period: u64) -> Result<Option<f64>, String> {
    if period == 0 {
        return Err("period is 0".into());
    }
    Ok(Some(quota as f64 / period as f64))
}

/// Splits `"key value"` lines (flat-keyed files such as `memory.stat` and `cpu.stat`) and calls
/// `f` with each key and its parsed value. Keys are compared whole by the caller, never by
/// prefix (`file` must not match `file_mapped`). Lines whose value does not parse are skipped:
/// one bad line must not discard the rest.
pub(crate) fn for_each_key_value(text: &str, mut f: impl FnMut(&str, u64)) {
    for line in text.lines() {
        let mut tokens = line.split_ascii_whitespace();
        if let (Some(key), Some(value)) = (tokens.next(), tokens.next())
            && let Ok(v) = value.parse()
        {
            f(key, v);
        }
    }
}

/// A file served as it is, if it says something: an empty one says nothing about the cgroup
/// (kernels since 5.x leave v1 `memory.kmem.slabinfo` empty), and the host file is then the
/// better answer.
pub(crate) fn nonempty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_tolerate_newlines_crlf_and_trailing_junk() {
        assert_eq!(parse_u64("123\n"), Ok(123));
        assert_eq!(parse_u64("123\r\n"), Ok(123));
        assert_eq!(parse_u64("123"), Ok(123));
        assert_eq!(parse_u64("  123 junk\n"), Ok(123));
        assert_eq!(parse_u64("123\0\0"), Ok(123));
        assert_eq!(parse_i64("-1\r\n"), Ok(-1));
    }

    #[test]
    fn garbage_and_empty_are_malformed() {
        assert!(parse_u64("abc").is_err());
        assert!(parse_u64("12a").is_err());
        assert!(parse_u64("").is_err());
        assert!(parse_u64("\n").is_err());
        assert!(parse_u64("-5").is_err());
        assert!(parse_i64("x1").is_err());
        assert!(parse_v2_limit("abc").is_err());
        assert!(parse_v1_limit("abc").is_err());
        assert!(parse_v1_limit("").is_err());
    }

    #[test]
    fn v2_limits() {
        assert_eq!(parse_v2_limit("max\n"), Ok(None));
        assert_eq!(parse_v2_limit("max\r\n"), Ok(None));
        assert_eq!(parse_v2_limit("536870912\n"), Ok(Some(536_870_912)));
        assert!(parse_v2_limit("maximum").is_err());
    }

    #[test]
    fn v1_limits() {
        assert_eq!(parse_v1_limit("9223372036854771712\n"), Ok(None));
        assert_eq!(parse_v1_limit("9223372036854775807\n"), Ok(None));
        assert_eq!(parse_v1_limit("9223372036854710272\n"), Ok(None)); // 64 KiB pages
        assert_eq!(parse_v1_limit("18446744073709551615\n"), Ok(None));
        assert_eq!(parse_v1_limit(&format!("{}\n", 1u64 << 62)), Ok(None));
        assert_eq!(
            parse_v1_limit(&format!("{}\n", (1u64 << 62) - 4096)),
            Ok(Some((1 << 62) - 4096))
        );
        assert_eq!(parse_v1_limit("-1\n"), Ok(None));
        assert_eq!(parse_v1_limit("268435456\r\n"), Ok(Some(268_435_456)));
        assert_eq!(parse_v1_limit("0\n"), Ok(Some(0)));
    }

    #[test]
    fn cpu_max() {
        assert_eq!(parse_cpu_max("max 100000\n"), Ok(None));
        assert_eq!(parse_cpu_max("50000 100000\n"), Ok(Some(0.5)));
        assert_eq!(parse_cpu_max("250000 100000\r\n"), Ok(Some(2.5)));
        assert!(parse_cpu_max("50000\n").is_err());
        assert!(parse_cpu_max("50000 0\n").is_err());
        assert!(parse_cpu_max("abc 100000").is_err());
        assert!(parse_cpu_max("").is_err());
    }

    #[test]
    fn blank_text_is_no_text() {
        assert_eq!(nonempty(Some(" \n".into())), None);
        assert_eq!(nonempty(None), None);
        assert_eq!(nonempty(Some("x\n".into())).as_deref(), Some("x\n"));
    }

    #[test]
    fn key_values_match_whole_keys_only() {
        let mut seen = Vec::new();
        for_each_key_value(
            "file 1\nfile_mapped 2\r\nbad x\n\nnokey\nanon 3 junk\n",
            |k, v| seen.push((k.to_string(), v)),
        );
        assert_eq!(
            seen,
            vec![
                ("file".into(), 1),
                ("file_mapped".into(), 2),
                ("anon".into(), 3)
            ]
        );
    }
}
