//! Counters a running daemon reports through `lxcfs-rs status`: reads served and host values
//! that stood in for a reader's own. They live in this process until the worker points them
//! at the shared board its supervisor reads ([`share`]).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The counters, laid out to sit in shared memory (plain `u64` atomics, `repr(C)`).
#[repr(C)]
#[derive(Debug, Default)]
pub struct Counters {
    /// Files rendered for a read.
    pub reads: AtomicU64,
    /// Times a host value stood in for one the reader's cgroup should have given
    /// (`docs/semantics.md#fallbacks`).
    pub fallbacks: AtomicU64,
}

static LOCAL: Counters = Counters {
    reads: AtomicU64::new(0),
    fallbacks: AtomicU64::new(0),
};
static SHARED: OnceLock<&'static Counters> = OnceLock::new();

/// The counters in use: the shared ones once [`share`]d, this process's own before.
pub fn counters() -> &'static Counters {
    SHARED.get().copied().unwrap_or(&LOCAL)
}

/// Counts into `shared` from now on (once per process; later calls are ignored).
pub fn share(shared: &'static Counters) {
    let _ = SHARED.set(shared);
}

/// Counts one rendered file.
pub fn read() {
    counters().reads.fetch_add(1, Ordering::Relaxed);
}

/// Counts one host value standing in.
pub fn fallback() {
    counters().fallbacks.fetch_add(1, Ordering::Relaxed);
}
