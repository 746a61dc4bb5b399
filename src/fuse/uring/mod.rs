//! FUSE-over-io_uring (Linux 6.14 and later): requests reach a serving thread on the
//! reader's own CPU through an io_uring, and one command answers a request and fetches the
//! next, where `/dev/fuse` costs a `read(2)` and a `writev(2)` and often a cross-CPU wake-up.
//!
//! The kernel offers it in INIT only while the host-wide module parameter
//! `/sys/module/fuse/parameters/enable_uring` is on, and lxcfs-rs asks for it only when told
//! to (`--io-uring`). Once every CPU's queue has an entry the kernel sends every request
//! there; FORGET and INTERRUPT still come on `/dev/fuse`, so the classic threads keep
//! serving beside the queues.

pub mod abi;
pub mod arena;
pub mod queue;

use std::io;

use crate::host::own::{CPU_POSSIBLE, FUSE_ENABLE_URING};

/// Whether the kernel offers FUSE-over-io_uring to new mounts: `None` when it has no such
/// parameter (a kernel before 6.14, or without `CONFIG_FUSE_IO_URING`).
pub fn offered_by_kernel() -> Option<bool> {
    let text = std::fs::read_to_string(FUSE_ENABLE_URING).ok()?;
    Some(matches!(text.trim(), "Y" | "y" | "1"))
}

/// The ring queues the kernel expects: one per possible CPU (`num_possible_cpus()`).
pub fn queue_count() -> io::Result<usize> {
    let text = std::fs::read_to_string(CPU_POSSIBLE)?;
    let cpus = crate::cpulist::parse(text.trim())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{CPU_POSSIBLE}: {e}")))?;
    Ok(cpus.len().max(1))
}

/// The payload buffer a ring entry needs: the kernel refuses one smaller than the largest of
/// the minimum read buffer, `max_write` and `max_pages` pages.
pub fn payload_size(max_write: u32, max_pages: u16) -> usize {
    (fuse_abi::linux::FUSE_MIN_READ_BUFFER as usize)
        .max(max_write as usize)
        .max(usize::from(max_pages) * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_fits_the_largest_request() {
        assert_eq!(payload_size(128 * 1024, 256), 1024 * 1024);
        assert_eq!(payload_size(4096, 1), 8192);
    }
}
