//! What `sysinfo(2)` answers, before it is laid out for the caller's ABI.

/// The numbers of `struct sysinfo`, memory in bytes (the kernel's `mem_unit` 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sysinfo {
    /// Seconds since boot (or since the container's start), rounded up as the kernel does.
    pub uptime: u64,
    /// 1, 5 and 15 minute load averages, fixed point with 16 fractional bits
    /// (`SI_LOAD_SHIFT`).
    pub loads: [u64; 3],
    /// Total usable memory.
    pub totalram: u64,
    /// Free memory.
    pub freeram: u64,
    /// Shared memory (meminfo's Shmem).
    pub sharedram: u64,
    /// Buffer memory (meminfo's Buffers).
    pub bufferram: u64,
    /// Total swap.
    pub totalswap: u64,
    /// Free swap.
    pub freeswap: u64,
    /// Number of threads (the kernel's `nr_threads`).
    pub procs: u64,
    /// Total high memory (0 on 64-bit hosts).
    pub totalhigh: u64,
    /// Free high memory.
    pub freehigh: u64,
}
