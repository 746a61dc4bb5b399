//! Counters a running daemon reports through `lxcfs-rs status`: reads served, host values
//! that stood in for a reader's own, and what open files keep (bytes, and reads that kept
//! nothing because their group was over its bound). They live in this process until the
//! worker points them at the shared board its supervisor reads ([`share`]).

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

/// What open files keep (`crate::fs::budget`), laid out as [`Counters`] are. A separate
/// struct so that it can sit at the end of the board, where a board made by an older binary
/// has zeroes.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Kept {
    /// Bytes the worker keeps for open files now (snapshots charged to their groups).
    pub bytes: AtomicU64,
    /// Reads served without keeping anything because their group (or all groups) held its
    /// bound: a container holding many open files (see README, "What a container can make
    /// the daemon hold").
    pub refused: AtomicU64,
}

static LOCAL: Counters = Counters {
    reads: AtomicU64::new(0),
    fallbacks: AtomicU64::new(0),
};
static LOCAL_KEPT: Kept = Kept {
    bytes: AtomicU64::new(0),
    refused: AtomicU64::new(0),
};
static SHARED: OnceLock<(&'static Counters, &'static Kept)> = OnceLock::new();

/// The counters in use: the shared ones once [`share`]d, this process's own before.
pub fn counters() -> &'static Counters {
    SHARED.get().map_or(&LOCAL, |s| s.0)
}

/// What open files keep: the shared count once [`share`]d, this process's own before.
pub fn kept() -> &'static Kept {
    SHARED.get().map_or(&LOCAL_KEPT, |s| s.1)
}

/// Counts into `counters` and `kept` from now on (once per process; later calls are
/// ignored). `kept.bytes` starts again from what this process keeps (nothing yet): a
/// worker that died took what it kept with it.
pub fn share(counters: &'static Counters, kept: &'static Kept) {
    if SHARED.set((counters, kept)).is_ok() {
        kept.bytes
            .store(LOCAL_KEPT.bytes.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Counts one rendered file.
pub fn read() {
    counters().reads.fetch_add(1, Ordering::Relaxed);
}

/// Counts one host value standing in.
pub fn fallback() {
    counters().fallbacks.fetch_add(1, Ordering::Relaxed);
}

/// Counts `bytes` kept for an open file.
pub fn kept_add(bytes: usize) {
    kept().bytes.fetch_add(bytes as u64, Ordering::Relaxed);
}

/// Counts `bytes` no longer kept. Saturating: while a worker hands over to its successor
/// both count on one board, and the successor started the count again from its own.
pub fn kept_sub(bytes: usize) {
    let _ = kept()
        .bytes
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
            Some(b.saturating_sub(bytes as u64))
        });
}

/// Counts one read that kept nothing because its group was over its bound.
pub fn kept_refused() {
    kept().refused.fetch_add(1, Ordering::Relaxed);
}
