//! How requests reach a daemon: `/dev/fuse` (a thread per request reading and writing the
//! device) or FUSE-over-io_uring (the kernel's `enable_uring`, negotiated at INIT). lxcfs-rs
//! reports its own (`status --json`, passed as `transport=`); for a daemon that reports
//! nothing (the floor), an io_uring descriptor among its open files is the sign, since a
//! FUSE server only sets up a ring once the kernel offered it one.

use std::fs;

/// The transports a target may name (`kernel` is the kernel's own files).
pub const KNOWN: [&str; 2] = ["/dev/fuse", "io_uring"];

/// What the anonymous inode of an io_uring instance reads as through `/proc/<pid>/fd`.
const RING_LINK: &str = "anon_inode:[io_uring]";

/// The transport of daemon `pid` as seen from its descriptors, and how it was seen.
pub fn seen(pid: i32) -> (String, String) {
    match ring_descriptors(pid) {
        Ok(0) => ("/dev/fuse".into(), "seen: no io_uring descriptor".into()),
        Ok(n) => (
            "io_uring".into(),
            format!("seen: {n} io_uring descriptor(s)"),
        ),
        Err(e) => ("/dev/fuse".into(), format!("assumed ({e})")),
    }
}

/// How many io_uring instances `pid` holds open.
fn ring_descriptors(pid: i32) -> Result<usize, String> {
    let dir = format!("/proc/{pid}/fd");
    let entries = fs::read_dir(&dir).map_err(|e| format!("reading {dir}: {e}"))?;
    Ok(entries
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|link| link.as_os_str() == RING_LINK)
        .count())
}

/// The host's `enable_uring` (`Y` or `N`), or `None` on a kernel without
/// FUSE-over-io_uring (no `CONFIG_FUSE_IO_URING`).
pub fn enable_uring() -> Option<String> {
    let text = fs::read_to_string(lxcfs_rs::host::own::FUSE_ENABLE_URING).ok()?;
    Some(text.trim().to_string())
}
