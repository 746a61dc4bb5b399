//! `sysinfo(2)` as the seccomp agent answers it: the numbers taken from the very files a
//! reader is served (meminfo, uptime, loadavg), so `free` and `/proc/meminfo` agree, and laid
//! out as the caller's ABI expects `struct sysinfo` (`docs/semantics.md#sysinfo`).

use super::host_meminfo::host_kb;
use crate::model::Sysinfo;

/// Size of the 64-bit `struct sysinfo` (x86_64, x32, aarch64).
pub const NATIVE_SIZE: usize = 112;
/// Size of the 32-bit `struct compat_sysinfo` (i386 and arm tasks on a 64-bit kernel).
pub const COMPAT_SIZE: usize = 64;

/// The `struct sysinfo` layout the caller expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// 64-bit longs, [`NATIVE_SIZE`] bytes, `mem_unit` 1.
    Native,
    /// 32-bit longs, [`COMPAT_SIZE`] bytes, memory scaled like the kernel's `compat_sysinfo`.
    Compat,
}

/// The reader's `sysinfo`: `host` (the kernel's own answer to the agent) with every number
/// the served files show replaced by theirs.
///
/// - totalram, freeram, sharedram, bufferram: MemTotal, MemFree, Shmem, Buffers of `meminfo`;
/// - totalswap, freeswap: SwapTotal, SwapFree of `meminfo` (the one swap rule);
/// - uptime: the first number of `uptime`, rounded up to a second as the kernel does;
/// - loads: the three averages of `loadavg`, in 1/65536;
/// - procs: `procs` (the threads of the reader's cgroup) when known;
/// - totalhigh, freehigh: 0, since a container has no high memory of its own.
///
/// A value a file does not have (a mangled host line) keeps the host's.
pub fn from_files(
    host: &Sysinfo,
    meminfo: &str,
    uptime: &str,
    loadavg: &str,
    procs: Option<u64>,
) -> Sysinfo {
    let bytes = |key: &str, host_value: u64| {
        host_kb(meminfo, key).map_or(host_value, |kb| kb.saturating_mul(1024))
    };
    let mut loads = host.loads;
    for (slot, word) in loads.iter_mut().zip(loadavg.split_whitespace()) {
        if let Some(v) = fixed_16(word) {
            *slot = v;
        }
    }
    Sysinfo {
        uptime: uptime
            .split_whitespace()
            .next()
            .and_then(seconds_rounded_up)
            .unwrap_or(host.uptime),
        loads,
        totalram: bytes("MemTotal", host.totalram),
        freeram: bytes("MemFree", host.freeram),
        sharedram: bytes("Shmem", host.sharedram),
        bufferram: bytes("Buffers", host.bufferram),
        totalswap: bytes("SwapTotal", host.totalswap),
        freeswap: bytes("SwapFree", host.freeswap),
        procs: procs.unwrap_or(host.procs),
        totalhigh: 0,
        freehigh: 0,
    }
}

/// `"S.CC"` (uptime's format) as whole seconds, rounded up.
fn seconds_rounded_up(word: &str) -> Option<u64> {
    let (int, frac) = decimal(word)?;
    Some(int.saturating_add(u64::from(frac > 0)))
}

/// `"I.FF"` (loadavg's format) in 1/65536, the kernel's `SI_LOAD_SHIFT` fixed point.
fn fixed_16(word: &str) -> Option<u64> {
    let (int, hundredths) = decimal(word)?;
    Some(
        int.saturating_mul(65536)
            .saturating_add(hundredths * 65536 / 100),
    )
}

/// The integer part and the hundredths of a `"I.FF"` number (`"I"` alone has 0).
fn decimal(word: &str) -> Option<(u64, u64)> {
    let (int, frac) = word.split_once('.').unwrap_or((word, ""));
    let int = int.parse().ok()?;
    let frac: String = frac.chars().chain("00".chars()).take(2).collect();
    Some((int, frac.parse().ok()?))
}

/// `s` laid out as `layout`, little-endian (x86 and arm), for a kernel whose page size is
/// `page_size`.
///
/// procs is capped at 65535 (a `u16`, as the kernel's own field). The compat layout scales
/// memory as `compat_sysinfo` does: if total RAM or swap does not fit 32 bits, `mem_unit`
/// becomes the page size and every memory value is divided by it; then each value is cut to
/// 32 bits, as is the uptime.
pub fn encode(s: &Sysinfo, layout: Layout, page_size: u64) -> Vec<u8> {
    let procs = s.procs.min(u64::from(u16::MAX)) as u16;
    let mem = [
        s.totalram,
        s.freeram,
        s.sharedram,
        s.bufferram,
        s.totalswap,
        s.freeswap,
    ];
    match layout {
        Layout::Native => {
            let mut out = Vec::with_capacity(NATIVE_SIZE);
            out.extend_from_slice(&s.uptime.min(i64::MAX as u64).to_le_bytes());
            for v in s.loads.iter().chain(&mem) {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&procs.to_le_bytes());
            out.extend_from_slice(&[0; 6]);
            out.extend_from_slice(&s.totalhigh.to_le_bytes());
            out.extend_from_slice(&s.freehigh.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
            out.resize(NATIVE_SIZE, 0);
            out
        }
        Layout::Compat => {
            let too_big = (s.totalram >> 32) != 0 || (s.totalswap >> 32) != 0;
            let (unit, shift) = if too_big && page_size.is_power_of_two() {
                (page_size as u32, page_size.trailing_zeros())
            } else {
                (1, 0)
            };
            let word = |v: u64| ((v >> shift) as u32).to_le_bytes();
            let mut out = Vec::with_capacity(COMPAT_SIZE);
            out.extend_from_slice(&(s.uptime as u32).to_le_bytes());
            for v in s.loads {
                out.extend_from_slice(&(v as u32).to_le_bytes());
            }
            for v in mem {
                out.extend_from_slice(&word(v));
            }
            out.extend_from_slice(&procs.to_le_bytes());
            out.extend_from_slice(&[0; 2]);
            out.extend_from_slice(&word(s.totalhigh));
            out.extend_from_slice(&word(s.freehigh));
            out.extend_from_slice(&unit.to_le_bytes());
            out.resize(COMPAT_SIZE, 0);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::test_input::{HOST, HOST_SWAP};

    const MEMINFO_256M: &str = "MemTotal:         262144 kB\nMemFree:          250000 kB\n\
        MemAvailable:     255000 kB\nBuffers:               0 kB\nCached:             4000 kB\n\
        Shmem:               100 kB\nSwapTotal:         65536 kB\nSwapFree:          60000 kB\n";

    fn host() -> Sysinfo {
        Sysinfo {
            uptime: 5000,
            loads: [1, 2, 3],
            totalram: 8 << 30,
            freeram: 6 << 30,
            sharedram: 7,
            bufferram: 9,
            totalswap: 0,
            freeswap: 0,
            procs: 321,
            totalhigh: 0,
            freehigh: 0,
        }
    }

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn numbers_come_from_the_served_files() {
        let s = from_files(
            &host(),
            MEMINFO_256M,
            "12.01 20.00\n",
            "0.52 1.00 10.25 1/3 7\n",
            Some(3),
        );
        assert_eq!(s.totalram, 268_435_456);
        assert_eq!(s.freeram, 250_000 * 1024);
        assert_eq!(s.sharedram, 100 * 1024);
        assert_eq!(s.bufferram, 0);
        assert_eq!((s.totalswap, s.freeswap), (65536 * 1024, 60000 * 1024));
        assert_eq!(s.uptime, 13, "rounded up like the kernel");
        assert_eq!(s.loads, [34078, 65536, 10 * 65536 + 16384]);
        assert_eq!(s.procs, 3);
        assert_eq!((s.totalhigh, s.freehigh), (0, 0));
    }

    #[test]
    fn what_the_files_lack_stays_the_hosts() {
        let s = from_files(&host(), "", "garbage", "x y", None);
        assert_eq!(
            s,
            Sysinfo {
                totalhigh: 0,
                freehigh: 0,
                ..host()
            }
        );
        let s = from_files(&host(), HOST, "7.00 1.00\n", "", None);
        assert_eq!(s.totalram, host_kb(HOST, "MemTotal").unwrap() * 1024);
        assert_eq!(s.uptime, 7, "a whole second stays");
        assert_eq!(s.totalswap, 0);
        let s = from_files(&host(), HOST_SWAP, "", "", None);
        assert_eq!(s.totalswap, host_kb(HOST_SWAP, "SwapTotal").unwrap() * 1024);
    }

    #[test]
    fn native_layout_has_the_kernels_offsets() {
        let s = from_files(
            &host(),
            MEMINFO_256M,
            "12.01 0\n",
            "0.52 1 2 1/3 7",
            Some(70_000),
        );
        let b = encode(&s, Layout::Native, 4096);
        assert_eq!(b.len(), NATIVE_SIZE);
        assert_eq!(u64_at(&b, 0), 13);
        assert_eq!(u64_at(&b, 8), 34078);
        assert_eq!(u64_at(&b, 32), 268_435_456);
        assert_eq!(u64_at(&b, 40), 250_000 * 1024);
        assert_eq!(u64_at(&b, 48), 100 * 1024);
        assert_eq!(u64_at(&b, 56), 0);
        assert_eq!(u64_at(&b, 64), 65536 * 1024);
        assert_eq!(u64_at(&b, 72), 60000 * 1024);
        assert_eq!(u16::from_le_bytes([b[80], b[81]]), 65535, "procs capped");
        assert_eq!(u64_at(&b, 88), 0);
        assert_eq!(u32_at(&b, 104), 1, "mem_unit");
    }

    #[test]
    fn compat_layout_scales_like_the_kernel() {
        let s = from_files(&host(), MEMINFO_256M, "12 0\n", "0.52 1 2 1/3 7", Some(3));
        let b = encode(&s, Layout::Compat, 4096);
        assert_eq!(b.len(), COMPAT_SIZE);
        assert_eq!(u32_at(&b, 0), 12);
        assert_eq!(u32_at(&b, 4), 34078);
        assert_eq!(u32_at(&b, 16), 268_435_456);
        assert_eq!(u32_at(&b, 20), 250_000 * 1024);
        assert_eq!(u16::from_le_bytes([b[40], b[41]]), 3);
        assert_eq!(u32_at(&b, 52), 1, "fits 32 bits: mem_unit 1");
        // 8 GiB does not fit: pages, as the kernel answered a 24 GiB host natively.
        let big = host();
        let b = encode(&big, Layout::Compat, 4096);
        assert_eq!(u32_at(&b, 52), 4096);
        assert_eq!(u32_at(&b, 16), (8u64 << 30 >> 12) as u32);
        assert_eq!(u32_at(&b, 20), (6u64 << 30 >> 12) as u32);
        assert_eq!(u32_at(&b, 24), 0, "7 bytes of shared memory are 0 pages");
        let swap_only = Sysinfo {
            totalram: 1 << 20,
            totalswap: 5 << 30,
            ..host()
        };
        assert_eq!(u32_at(&encode(&swap_only, Layout::Compat, 4096), 52), 4096);
    }
}
