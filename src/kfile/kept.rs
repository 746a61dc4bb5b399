//! Kernel files kept open: each serving thread keeps the descriptors of the kernel files it
//! reads (`/proc/meminfo`, `/proc/stat`, cgroup files, `/sys` CPU lists) and re-reads them
//! with `pread` from offset 0, which makes procfs, sysfs and cgroupfs generate the file
//! afresh. That saves the path walk, open and close of every read (about half the cost of a
//! host file, docs/performance notes in the README).
//!
//! Safe by construction:
//! - only files on procfs, sysfs and cgroupfs are kept (a fixture tree on a disk is never
//!   stale), and never a `/proc/<pid>/` file: a kept descriptor of a process's file is bound
//!   to that process, and one-shot readers bring a new pid every time;
//! - never a cgroup's member list (`tasks`, `cgroup.procs`, `cgroup.threads`): on v1 an open
//!   descriptor keeps the pid list it loaded for as long as it is read at least once a
//!   second, so a kept one would never see a task come or go;
//! - a kept cgroup file whose cgroup was removed answers ENODEV (also when a cgroup of the
//!   same name was made since): it is dropped and the path opened again, which then finds
//!   the new cgroup or nothing;
//! - per thread, so no two reads share a descriptor's position, and bounded (least recently
//!   used dropped first);
//! - let go of once unused for [`IDLE`]: an open file of a removed cgroup keeps the dying
//!   cgroup in kernel memory, and containers come and go.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::num::NonZeroUsize;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lru::LruCache;
use nix::errno::Errno;
use nix::sys::statfs::{
    CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, PROC_SUPER_MAGIC, SYSFS_MAGIC, fstatfs,
};

/// Descriptors kept per thread: a reader's files take about 6, so this covers a few dozen
/// busy containers per thread; the daemon raises its descriptor limit to match.
pub const PER_THREAD: usize = 64;

/// Cgroup files listing members, whose v1 form caches the list per open descriptor
/// (`cgroup_pidlist_start` reuses it until a second passes without a read).
const MEMBER_LISTS: [&str; 3] = ["tasks", "cgroup.procs", "cgroup.threads"];

/// How long a descriptor is kept without being read.
pub const IDLE: Duration = Duration::from_secs(10);

thread_local! {
    static KEPT: RefCell<LruCache<PathBuf, (File, Instant)>> =
        RefCell::new(LruCache::new(NonZeroUsize::new(PER_THREAD).unwrap_or(NonZeroUsize::MIN)));
}

/// Whether an open file may be kept: a kernel file that is not about one process.
fn keepable(path: &Path, file: &File) -> bool {
    let kernel = fstatfs(file).is_ok_and(|s| {
        [
            PROC_SUPER_MAGIC,
            SYSFS_MAGIC,
            CGROUP_SUPER_MAGIC,
            CGROUP2_SUPER_MAGIC,
        ]
        .contains(&s.filesystem_type())
    });
    let per_process = path.components().any(|c| {
        c.as_os_str()
            .to_str()
            .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    });
    let member_list = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| MEMBER_LISTS.contains(&n));
    kernel && !per_process && !member_list
}

/// Where a file's bytes ended up.
enum Filled {
    /// `stack[..len]`.
    Stack(usize),
    /// Too large for the stack buffer.
    Heap(Vec<u8>),
}

/// One read at `offset`: positional for a kept kernel file (which is re-read from 0 each
/// time), sequential otherwise (a fixture may be a FIFO, which has no offsets).
fn read_once(file: &File, buf: &mut [u8], offset: usize, positional: bool) -> io::Result<usize> {
    if positional {
        file.read_at(buf, offset as u64)
    } else {
        (&mut &*file).read(buf)
    }
}

/// Reads the whole file from offset 0 into `stack`, continuing on the heap when it does not
/// fit.
fn fill(file: &File, stack: &mut [u8], positional: bool) -> io::Result<Filled> {
    let mut len = 0;
    while len < stack.len() {
        match read_once(file, &mut stack[len..], len, positional) {
            Ok(0) => return Ok(Filled::Stack(len)),
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let mut heap = stack.to_vec();
    loop {
        heap.resize(len + 4096, 0);
        match read_once(file, &mut heap[len..], len, positional) {
            Ok(0) => {
                heap.truncate(len);
                return Ok(Filled::Heap(heap));
            }
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Whether an error on a kept descriptor means "open the path again": the cgroup was
/// removed (ENODEV) or the process is gone (ESRCH).
fn stale(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::ENODEV | Errno::ESRCH)
    )
}

/// Reads all of `path` (through a kept descriptor where it may be kept) into `stack` and
/// hands the bytes to `f`.
pub fn read<T>(path: &Path, stack: &mut [u8], f: impl FnOnce(&[u8]) -> T) -> io::Result<T> {
    let now = Instant::now();
    // A kept descriptor is read in place: no key to allocate, nothing to move.
    let kept = KEPT.with(|k| {
        let mut k = k.borrow_mut();
        while k
            .peek_lru()
            .is_some_and(|(_, (_, used))| now.duration_since(*used) > IDLE)
        {
            k.pop_lru();
        }
        let (file, used) = k.get_mut(path)?;
        let result = fill(file, stack, true);
        match &result {
            Ok(_) => *used = now,
            // Gone (ENODEV, ESRCH: opened again below) or failing: not kept any more.
            Err(_) => {
                k.pop(path);
            }
        }
        Some(result)
    });
    let filled = match kept {
        Some(Ok(bytes)) => bytes,
        Some(Err(e)) if !stale(&e) => return Err(e),
        _ => {
            let file = File::open(path)?;
            let keep = keepable(path, &file);
            let bytes = fill(&file, stack, keep)?;
            if keep {
                KEPT.with(|k| k.borrow_mut().put(path.to_path_buf(), (file, now)));
            }
            bytes
        }
    };
    Ok(match filled {
        Filled::Stack(len) => f(&stack[..len]),
        Filled::Heap(heap) => f(&heap),
    })
}

/// How many descriptors this thread keeps.
#[cfg(test)]
pub fn count() -> usize {
    KEPT.with(|k| k.borrow().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_unused_for_a_while_are_let_go() {
        let meminfo = Path::new("/proc/meminfo");
        text(meminfo).unwrap();
        assert!(KEPT.with(|k| k.borrow().contains(meminfo)));
        // Age every entry past IDLE, then read something else.
        KEPT.with(|k| {
            for (_, (_, used)) in k.borrow_mut().iter_mut() {
                *used -= IDLE + Duration::from_secs(1);
            }
        });
        text(Path::new("/proc/uptime")).unwrap();
        assert!(!KEPT.with(|k| k.borrow().contains(meminfo)));
        assert_eq!(count(), 1, "only the file just read");
    }

    fn text(path: &Path) -> io::Result<String> {
        read(path, &mut [0u8; 64], |b| {
            String::from_utf8_lossy(b).into_owned()
        })
    }

    #[test]
    fn files_on_disk_are_never_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meminfo");
        std::fs::write(&p, "one").unwrap();
        let before = count();
        assert_eq!(text(&p).unwrap(), "one");
        // Replaced by a new file, as a test's fixture is: the new one is read.
        let q = dir.path().join("next");
        std::fs::write(&q, "two").unwrap();
        std::fs::rename(&q, &p).unwrap();
        assert_eq!(text(&p).unwrap(), "two");
        assert_eq!(count(), before);
    }

    #[test]
    fn proc_files_are_kept_and_read_afresh_but_not_a_processs() {
        let meminfo = Path::new("/proc/meminfo");
        let first = text(meminfo).unwrap();
        assert!(
            first.starts_with("MemTotal:"),
            "larger than the stack buffer too"
        );
        let kept = count();
        assert!(kept >= 1);
        // /proc/uptime moves: a kept descriptor re-read at 0 shows the new value.
        let uptime = Path::new("/proc/uptime");
        let a = text(uptime).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let b = text(uptime).unwrap();
        assert_ne!(a, b, "re-read from offset 0 regenerates");
        assert_eq!(count(), kept + 1);
        let own = PathBuf::from(format!("/proc/{}/stat", std::process::id()));
        text(&own).unwrap();
        assert_eq!(count(), kept + 1, "a process's file is not kept");
    }

    #[test]
    fn the_cache_is_bounded() {
        let before = count();
        let dir = Path::new("/proc/sys/kernel");
        let mut read = 0;
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().is_file() && text(&e.path()).is_ok() {
                read += 1;
            }
        }
        assert!(read > PER_THREAD, "{read} files read");
        assert!(count() <= PER_THREAD && count() >= before.min(PER_THREAD));
    }
}
