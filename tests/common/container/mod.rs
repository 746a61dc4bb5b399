//! Real OCI containers run by `runc` for the end-to-end tests: a busybox root filesystem built
//! on the fly (no image pulls) with a static C probe, `config.json` made from `runc spec`,
//! the daemon's files bind-mounted over the container's `/proc` and `/sys` exactly as
//! `docker run -v /var/lib/lxcfs/proc/meminfo:/proc/meminfo:rw` does, and the container's
//! output cut into named sections.
//!
//! Every container is removed by its `Drop` guard (`runc kill`, `runc delete --force`, then
//! any cgroup directory runc left behind), so a failing assertion leaves nothing running.
//!
//! - [`rootfs`]: the busybox root filesystem with the probe;
//! - [`spec`]: a container's `config.json`;
//! - [`runc`]: `runc` itself, the containers it runs and the [`Barrier`] between them;
//! - [`report`]: what a container printed, by section.

mod report;
mod rootfs;
mod runc;
mod spec;
mod sysinfo_probe;

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rootfs::BUSYBOX;
// Re-exports: not every test crate uses every part.
#[allow(unused_imports)]
pub use {
    report::{LoopEvent, LoopSummary, Report},
    rootfs::Rootfs,
    runc::{Barrier, Container, MemorySubCgroup, Runc},
    spec::Spec,
};

use super::{can_mount, have_program, skip};

/// The files a container gets from the daemon, as in lxcfs's documented `docker run -v` list.
pub const BOUND_FILES: &[&str] = &[
    "proc/cpuinfo",
    "proc/diskstats",
    "proc/loadavg",
    "proc/meminfo",
    "proc/stat",
    "proc/swaps",
    "proc/uptime",
    "sys/devices/system/cpu/online",
];

/// Shell functions every container script can use.
///
/// `sec NAME` starts a section of the output (see [`Report`]); `ready` tells the test this
/// container is up, then waits for the test's go (a [`Barrier`]), so that several
/// containers do their reads at the same time (it polls with `read -t` on a FIFO nobody
/// writes rather than with `sleep`, so the waiting forks no task into the container that
/// would be newer than a reader's and show up as loadavg's last pid); `report` reads every
/// bound file with read(2) and records what common tools print; `splice_loop N` reads
/// files N times with busybox `cat`, which tries sendfile(2) first, into a pipe and into a
/// file.
pub const PRELUDE: &str = r#"
sec() { printf '\n::section %s\n' "$1"; }
ready() {
  : > "/sync/$NAME.ready"
  until [ -e /sync/go ]; do read -t 0.02 x <> /sync/idle; done
  return 0
}
report() {
  sec uptime; probe read /proc/uptime
  sec loadavg; probe loadavg
  sec meminfo; probe read /proc/meminfo
  sec cpuinfo; probe read /proc/cpuinfo
  sec stat; probe read /proc/stat
  sec online; probe read /sys/devices/system/cpu/online
  sec swaps; probe read /proc/swaps
  sec diskstats; probe read /proc/diskstats
  sec sysconf; probe sysconf
  sec nproc; nproc
  sec free; free
  sec top; top -b -n 1
}
splice_loop() {
  i=0
  while [ "$i" -lt "$1" ]; do
    echo "online-pipe $(cat /sys/devices/system/cpu/online)"
    cat /sys/devices/system/cpu/online > /dev/shm/online
    echo "online-file $(cat /dev/shm/online)"
    cat /proc/meminfo > /dev/shm/meminfo
    echo "memtotal-file $(grep MemTotal: /dev/shm/meminfo)"
    echo "meminfo-lines-file $(grep -c : /dev/shm/meminfo)"
    echo "processors-pipe $(cat /proc/cpuinfo | grep -c ^processor)"
    echo "stat-cpus-pipe $(cat /proc/stat | grep -c ^cpu)"
    i=$((i + 1))
  done
}
"#;

/// The busybox the containers' root filesystem is made of: the splice loop reads with its
/// `cat`, so the tests show it copies with sendfile
/// ([`super::splice::assert_busybox_cat_takes_sendfile`]).
pub fn rootfs_busybox() -> &'static Path {
    Path::new(BUSYBOX)
}

/// Whether the container tests can run: [`can_mount`], plus `runc`, a static busybox and
/// `gcc` (with a static libc) for the probe. Returns false (after printing why) when the
/// test should be skipped; panics in CI.
pub fn can_run_containers() -> bool {
    if !can_mount() {
        return false;
    }
    if !have_program("runc") {
        return skip("runc is not installed (scripts/deps.sh test installs it)");
    }
    match is_static_elf(Path::new(BUSYBOX)) {
        Ok(true) => {}
        Ok(false) => {
            return skip(&format!(
                "{BUSYBOX} is dynamically linked; the container root filesystem needs \
                 busybox-static (scripts/deps.sh test installs it)"
            ));
        }
        Err(e) => {
            return skip(&format!(
                "{BUSYBOX}: {e}; install busybox-static (scripts/deps.sh test installs it)"
            ));
        }
    }
    if !have_program("gcc") {
        return skip("gcc is not installed (scripts/deps.sh installs gcc and libc6-dev)");
    }
    true
}

/// Whether the ELF file at `path` has no program interpreter (`PT_INTERP`), i.e. runs
/// without a dynamic loader in an otherwise empty root filesystem.
fn is_static_elf(path: &Path) -> Result<bool, String> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| e.to_string())?;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return Err("not a little-endian 64-bit ELF file".into());
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let ty = bytes
            .get(at..at + 4)
            .ok_or("truncated program headers")?
            .try_into()
            .map(u32::from_le_bytes)
            .map_err(|_| "truncated program headers")?;
        const PT_INTERP: u32 = 3;
        if ty == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Makes `dir` traversable and readable by everyone: a user-namespaced container's root is
/// an unprivileged host uid, and runc resolves the rootfs and bind sources as that uid.
pub fn open_to_all(dir: &Path) {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod 755 {}: {e}", dir.display()));
}
