//! The few fields we need from `/proc/<pid>/stat` and `/proc/<pid>/status`.
//!
//! Hand-written rather than procfs's `Stat` / `Status` parsers: procfs's `Stat::from_read`
//! panics on some malformed input (`"1 (x)"` slices out of bounds, `"(x) R 1"` underflows)
//! and parses ~50 fields to give us 3; `Status::from_buf_read` requires ~30 lines we do not
//! read (a status lacking `SigQ` fails) and builds a `HashMap` of owned strings for every
//! process on a `PPid:` walk. These run for every thread on each loadavg sample.

use std::os::unix::fs::MetadataExt;

use super::error::ReaderError;
use crate::host::HostPaths;
use crate::kfile::read_with;

/// Fields of `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatFields {
    /// Field 3: `R` running, `D` uninterruptible, ...
    pub(crate) state: char,
    /// Field 22: start time in clock ticks since boot.
    pub(crate) start_ticks: u64,
}

/// Parses a `/proc/<pid>/stat` line. Field 2, `(comm)`, may hold spaces and parentheses, so
/// the fields after it are counted from the *last* `)`.
pub(crate) fn parse_stat(text: &str) -> Option<StatFields> {
    let (_, after_comm) = text.rsplit_once(')')?;
    let mut fields = after_comm.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 was taken; field 22 is the 19th of the rest.
    let start_ticks = fields.nth(18)?.parse().ok()?;
    Some(StatFields { state, start_ticks })
}

/// Fields of `/proc/<pid>/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusFields {
    /// `PPid:` as the host numbers it (0 for init and kernel threads).
    pub(crate) ppid: u32,
    /// `NSpid:`: the pid in each nested pid namespace, outermost (the host's) first.
    pub(crate) nspid: Vec<u32>,
}

impl StatusFields {
    /// How deep the process's pid namespace is: 1 for the host's.
    pub(crate) fn depth(&self) -> usize {
        self.nspid.len()
    }

    /// The pid in the process's own (innermost) namespace.
    pub(crate) fn innermost(&self) -> Option<u32> {
        self.nspid.last().copied()
    }
}

/// Parses the `PPid:` and `NSpid:` lines of a status file.
pub(crate) fn parse_status(text: &str) -> Result<StatusFields, String> {
    let (mut ppid, mut nspid) = (None, None);
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("PPid:") {
            ppid = Some(v.trim().parse().map_err(|_| format!("bad PPid {v:?}"))?);
        } else if let Some(v) = line.strip_prefix("NSpid:") {
            let list: Result<Vec<u32>, _> = v.split_ascii_whitespace().map(str::parse).collect();
            nspid = Some(list.map_err(|_| format!("bad NSpid {v:?}"))?);
        }
        if ppid.is_some() && nspid.is_some() {
            break;
        }
    }
    let ppid = ppid.ok_or("no PPid line")?;
    // NSpid exists since Linux 4.1; without it we cannot tell namespaces apart.
    let nspid = nspid
        .filter(|l| !l.is_empty())
        .ok_or("no NSpid line (kernel before 4.1?)")?;
    Ok(StatusFields { ppid, nspid })
}

/// Reads and parses `<proc>/<pid>/status`.
pub(crate) fn read_status(host: &HostPaths, pid: u32) -> Result<StatusFields, ReaderError> {
    let path = host.pid_file(pid, "status");
    match read_with(&path, parse_status) {
        Ok(Ok(fields)) => Ok(fields),
        Ok(Err(what)) => Err(ReaderError::Malformed { pid, path, what }),
        Err(e) => Err(ReaderError::io(pid, path, e)),
    }
}

/// Start time of a process in clock ticks since boot (field 22 of `<proc>/<pid>/stat`).
/// Together with the pid it names one process for the whole boot, so it tells a cached pid
/// from a recycled one.
pub fn start_ticks(host: &HostPaths, pid: u32) -> Result<u64, ReaderError> {
    let path = host.pid_file(pid, "stat");
    match read_with(&path, parse_stat) {
        Ok(Some(fields)) => Ok(fields.start_ticks),
        Ok(None) => Err(ReaderError::Malformed {
            pid,
            path,
            what: "no start time (field 22)".into(),
        }),
        Err(e) => Err(ReaderError::io(pid, path, e)),
    }
}

/// The inode of `<proc>/<pid>/ns/pid`, which names the process's pid namespace: the `N` of
/// its link text `pid:[N]`. Reading the link costs less than half of a `stat` through it
/// (2.7 against 6.2 µs here), which must get the nsfs inode; every read of `uptime` asks.
/// In fixture trees the file is a plain file, hard-linked between processes of one
/// namespace, so a file that is no link (EINVAL) gives its own inode.
pub(crate) fn ns_inode(host: &HostPaths, pid: u32) -> Result<u64, ReaderError> {
    let path = host.pid_file(pid, "ns/pid");
    let link = match std::fs::read_link(&path) {
        Ok(link) => link,
        Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {
            return std::fs::metadata(&path)
                .map(|m| m.ino())
                .map_err(|e| ReaderError::io(pid, path, e));
        }
        Err(e) => return Err(ReaderError::io(pid, path, e)),
    };
    match parse_ns_link(&link.to_string_lossy()) {
        Some(inode) => Ok(inode),
        None => Err(ReaderError::Malformed {
            pid,
            what: format!("link text {link:?} is not pid:[N]"),
            path,
        }),
    }
}

/// The `N` of a namespace link's text `pid:[N]`.
fn parse_ns_link(text: &str) -> Option<u64> {
    text.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = "7794 (cat) R 7783 7783 3534 0 -1 4194304 99 0 0 0 0 0 0 0 20 0 1 0 50653 3133440 357 \
        18446744073709551615 94848748539904 94848748559785 140735295816464 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 \
        94848748575792 94848748577408 94849394315264 140735295818453 140735295818473 140735295818473 \
        140735295819755 0\n";

    #[test]
    fn a_namespace_link_names_its_inode() {
        assert_eq!(parse_ns_link("pid:[4026531836]"), Some(4026531836));
        assert_eq!(parse_ns_link("net:[4026531836]"), None);
        assert_eq!(parse_ns_link("pid:[]"), None);
        assert_eq!(parse_ns_link("pid:[12"), None);
    }

    #[test]
    fn the_namespace_inode_is_the_one_stat_gives() {
        use std::os::unix::fs::MetadataExt;
        let host = HostPaths::default();
        let me = std::process::id();
        let by_stat = std::fs::metadata(format!("/proc/{me}/ns/pid"))
            .unwrap()
            .ino();
        assert_eq!(ns_inode(&host, me).unwrap(), by_stat);
        assert!(ns_inode(&host, u32::MAX).is_err(), "no such process");
    }

    #[test]
    fn stat_fields_from_a_real_line() {
        assert_eq!(
            parse_stat(REAL),
            Some(StatFields {
                state: 'R',
                start_ticks: 50653
            })
        );
    }

    #[test]
    fn stat_comm_with_spaces_and_parens() {
        let line = "42 (a) b (c)) D 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0\n";
        assert_eq!(
            parse_stat(line),
            Some(StatFields {
                state: 'D',
                start_ticks: 777
            })
        );
    }

    #[test]
    fn stat_malformed_is_none_not_panic() {
        for bad in [
            "",
            "1 (x)",
            "(x) R 1",
            "1 (x) R 1 2",
            "no parens at all",
            "1 (x) R 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 x",
        ] {
            assert_eq!(parse_stat(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn status_fields() {
        let text = "Name:\tsh\nPid:\t900\nPPid:\t899\nNSpid:\t900\t12\t1\nThreads:\t1\n";
        assert_eq!(
            parse_status(text),
            Ok(StatusFields {
                ppid: 899,
                nspid: vec![900, 12, 1]
            })
        );
        let crlf = "PPid:\t1\r\nNSpid:\t5\r\n";
        assert_eq!(
            parse_status(crlf),
            Ok(StatusFields {
                ppid: 1,
                nspid: vec![5]
            })
        );
        assert!(parse_status("PPid:\t1\n").is_err());
        assert!(parse_status("NSpid:\t1\n").is_err());
        assert!(parse_status("PPid:\tx\nNSpid:\t1\n").is_err());
        assert!(parse_status("PPid:\t1\nNSpid:\t\n").is_err());
    }
}
