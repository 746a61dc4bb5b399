//! What `sysinfo(2)` answers a reader (the seccomp agent's numbers): made from the very
//! texts of its `proc/meminfo`, `proc/uptime` and `proc/loadavg`, so `free` and the files
//! never disagree. Spec: `docs/semantics.md#sysinfo`.

use std::io;

use super::context::{Reading, Recipe};
use super::{loadavg::Loadavg, meminfo::Meminfo, uptime::Uptime};
use crate::cgroup::ReaderCgroups;
use crate::model::Sysinfo;
use crate::render;

/// The reader's `sysinfo`: the kernel's answer to us, with what the reader's files show.
pub(crate) fn sysinfo(r: &Reading<'_>) -> io::Result<Sysinfo> {
    let host = host_sysinfo()?;
    let meminfo = Meminfo.content(r)?;
    let uptime = Uptime.content(r)?;
    let loadavg = Loadavg.content(r)?;
    // The kernel counts threads host-wide; a reader in a cgroup counts its cgroup's.
    let procs = r
        .cgroups()
        .and_then(ReaderCgroups::task_dir)
        .map(|dir| r.src.tasks.count(&dir).0.total);
    Ok(render::sysinfo::from_files(
        &host, &meminfo, &uptime, &loadavg, procs,
    ))
}

/// The kernel's own `sysinfo(2)` for us, memory in bytes.
// `c_ulong` is 32 bits wide on 32-bit targets: the casts are no-ops only on 64-bit ones.
#[allow(clippy::unnecessary_cast)]
fn host_sysinfo() -> io::Result<Sysinfo> {
    // SAFETY: sysinfo only writes the struct it is given.
    let mut raw: nix::libc::sysinfo = unsafe { std::mem::zeroed() };
    if unsafe { nix::libc::sysinfo(&mut raw) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let unit = u64::from(raw.mem_unit.max(1));
    let bytes = |v: nix::libc::c_ulong| (v as u64).saturating_mul(unit);
    Ok(Sysinfo {
        uptime: raw.uptime.max(0) as u64,
        loads: raw.loads.map(|l| l as u64),
        totalram: bytes(raw.totalram),
        freeram: bytes(raw.freeram),
        sharedram: bytes(raw.sharedram),
        bufferram: bytes(raw.bufferram),
        totalswap: bytes(raw.totalswap),
        freeswap: bytes(raw.freeswap),
        procs: u64::from(raw.procs),
        totalhigh: bytes(raw.totalhigh),
        freehigh: bytes(raw.freehigh),
    })
}
