//! The kernel's CPU list format (`0-3,6`), used by cpusets and `/sys/devices/system/cpu`.

use thiserror::Error;

/// A CPU list that could not be parsed.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("malformed CPU list {0:?}")]
pub struct CpuListError(pub String);

/// Parses a list such as `0-3,6\n` into ascending, de-duplicated CPU ids.
/// An empty (or all-whitespace) list is valid and yields no CPUs.
pub fn parse(text: &str) -> Result<Vec<u32>, CpuListError> {
    let bad = || CpuListError(text.to_string());
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (
                a.parse::<u32>().map_err(|_| bad())?,
                b.parse::<u32>().map_err(|_| bad())?,
            ),
            None => {
                let n = part.parse::<u32>().map_err(|_| bad())?;
                (n, n)
            }
        };
        // A range wider than any real machine is garbage, not a request to allocate.
        if lo > hi || hi - lo > 65_536 {
            return Err(bad());
        }
        cpus.extend(lo..=hi);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// Formats ascending CPU ids as ranges, e.g. `[0, 1, 2, 3, 6]` as `0-3,6` (no newline).
pub fn format(cpus: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_singles_and_whitespace() {
        assert_eq!(parse("0-3,6\n").unwrap(), vec![0, 1, 2, 3, 6]);
        assert_eq!(parse("1").unwrap(), vec![1]);
        assert_eq!(parse("3,1-2,2").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse("\n").unwrap(), Vec::<u32>::new());
        assert_eq!(parse("").unwrap(), Vec::<u32>::new());
        assert_eq!(parse("0-1\r\n").unwrap(), vec![0, 1]);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("a-b").is_err());
        assert!(parse("3-1").is_err());
        assert!(parse("0-4294967295").is_err());
        assert!(parse("0-1 junk").is_err());
    }

    #[test]
    fn formats_ranges() {
        assert_eq!(format(&[0, 1, 2, 3, 6]), "0-3,6");
        assert_eq!(format(&[0]), "0");
        assert_eq!(format(&[1, 3, 5, 6]), "1,3,5-6");
        assert_eq!(format(&[]), "");
    }
}
