//! Where each open file's snapshot ended, kept outside the serving process.
//!
//! A handle's snapshot lives in the worker that made it. When that worker dies (a crash,
//! the watchdog) or hands over, a reader that read the whole file and asks at its end for
//! the EOF gets its request answered by a successor that never saw the snapshot: rendered
//! afresh and sliced at the reader's offset, a file that grew meanwhile (`uptime` from
//! `9.99` to `10.01`) would hand the reader the new file's tail after the old file, two files
//! torn together. Knowing where the old snapshot ended, the successor answers EOF there.

/// Notes of snapshot lengths by handle number that outlive a worker.
pub trait SnapshotLedger: Send + Sync {
    /// Handle `fh`'s snapshot is now `len` bytes long.
    fn note(&self, fh: u64, len: usize);
    /// How long handle `fh`'s last snapshot was, if still noted.
    fn noted(&self, fh: u64) -> Option<usize>;
}
